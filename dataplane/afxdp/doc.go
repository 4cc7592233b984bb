// Package afxdp is weir's AF_XDP backend: the XDP program of package
// xdp steers GENEVE and VXLAN datagrams to one AF_XDP socket (package xsk) per
// RX queue, and one worker per queue runs the pipeline over the UMEM frames in
// place. Replies are rewritten in the frame they arrived in and sent on the
// same socket's TX ring; everything else the program passes to the kernel,
// where weir's socket backend serves what is tunnel traffic.
package afxdp
