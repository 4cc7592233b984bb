// Package xsk is weir's AF_XDP socket layer: the UMEM (the packet memory shared with
// the kernel), the four rings (fill, completion, RX, TX) and the socket that binds
// them to one queue of one interface.
//
// Package afxdp opens one socket per queue. It is written on golang.org/x/sys/unix after the kernel's
// Documentation/networking/af_xdp.rst; no maintained Go AF_XDP library exists.
//
// A ring is a producer index, a consumer index, a flags word and an array of
// entries, shared with the kernel through mmap. User space produces on the fill and
// TX rings (Reserve, write the entries, Submit) and consumes from the RX and
// completion rings (Peek, read the entries, Release). Each side keeps cached copies
// of both indexes and reads the other side's shared index only when its cached copy
// cannot answer the request, so a batch costs one shared read at most and one shared
// write.
//
// Memory ordering: the shared indexes are read with atomic loads and written with
// atomic stores. Go's sync/atomic operations are sequentially consistent, which is
// at least the acquire/release pairing the kernel's side uses: a producer's entry
// writes are visible before the producer index that publishes them, and a
// consumer's entry reads are done before the consumer index that hands the slots
// back. Plain loads and stores would let the compiler or the CPU reorder them.
//
// The per-packet operations (ring Reserve, Submit, Peek, Release and entry access,
// UMEM Alloc, Free and Frame) allocate nothing.
package xsk
