package pcapin

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// MaxSnapLen is the longest record read: libpcap's maximum snap length. A record
// header claiming more is refused before anything is allocated for it, so a crafted
// length cannot make replay allocate gigabytes.
const MaxSnapLen = 262144

// maxBlock bounds every pcapng block (name resolution, decryption secrets and other
// blocks that pcapgo reads whole), well above any packet block of MaxSnapLen.
const maxBlock = 16 << 20

// source reads the records of one capture file.
type source interface {
	// next returns the next record's link type, capture time (unix ns) and bytes,
	// which are valid until the following call; io.EOF after the last record.
	next() (link layers.LinkType, ts int64, data []byte, err error)
}

// ErrTooLong is wrapped by the errors for records and blocks over the limits.
var ErrTooLong = errors.New("exceeds the maximum")

func tooLong(what string, n uint64, limit int) error {
	return fmt.Errorf("%s %d %w %d", what, n, ErrTooLong, limit)
}

// Magic numbers of capture files, as the first four bytes read little-endian.
const (
	magicMicro   = 0xa1b2c3d4
	magicNano    = 0xa1b23c4d
	magicMicroBE = 0xd4c3b2a1
	magicNanoBE  = 0x4d3cb2a1
	magicNG      = 0x0a0d0d0a // pcapng section header block type, the same in both byte orders
)

// openSource sniffs r: classic pcap (either byte order, micro- or nanosecond
// timestamps) or pcapng, either of them gzip-compressed.
func openSource(r io.Reader) (source, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if m, _ := br.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	m, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture file: %w", err)
	}
	switch binary.LittleEndian.Uint32(m) {
	case magicNG:
		ng, err := pcapgo.NewNgReader(&blockLimiter{r: br}, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, err
		}
		return ngSource{ng}, nil
	case magicMicro, magicNano, magicMicroBE, magicNanoBE:
		return newPcapReader(br)
	}
	return nil, fmt.Errorf("not a capture file: magic %#08x", binary.LittleEndian.Uint32(m))
}

// pcapReader reads classic pcap records into one reused buffer. pcapgo's reader
// takes a record as long as the file header's snap length says, and that header is
// as untrusted as the records; this one holds every record to MaxSnapLen.
type pcapReader struct {
	r     io.Reader
	order binary.ByteOrder
	frac  int64 // nanoseconds per unit of the timestamp's fraction: 1000 or 1
	link  layers.LinkType
	hdr   [16]byte // ts sec, ts usec or nsec, captured length, original length
	buf   []byte
}

func newPcapReader(r io.Reader) (*pcapReader, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap file header: %w", err)
	}
	p := &pcapReader{r: r, order: binary.LittleEndian, frac: 1000}
	switch binary.LittleEndian.Uint32(h[0:4]) {
	case magicMicroBE:
		p.order = binary.BigEndian
	case magicNano:
		p.frac = 1
	case magicNanoBE:
		p.order, p.frac = binary.BigEndian, 1
	}
	if v := p.order.Uint16(h[4:6]); v != 2 {
		return nil, fmt.Errorf("pcap version %d.%d not supported", v, p.order.Uint16(h[6:8]))
	}
	// The low 16 bits are the link type; the upper ones may carry FCS flags.
	p.link = layers.LinkType(p.order.Uint32(h[20:24]) & 0xffff)
	return p, nil
}

func (p *pcapReader) next() (layers.LinkType, int64, []byte, error) {
	if n, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF && n > 0 {
			return 0, 0, nil, fmt.Errorf("record header cut short: %w", err)
		}
		return 0, 0, nil, err // io.EOF at a record boundary: the end
	}
	caplen := p.order.Uint32(p.hdr[8:12])
	if caplen > MaxSnapLen {
		return 0, 0, nil, tooLong("captured length", uint64(caplen), MaxSnapLen)
	}
	if cap(p.buf) < int(caplen) {
		p.buf = make([]byte, max(int(caplen), 1<<16))
	}
	data := p.buf[:caplen]
	if _, err := io.ReadFull(p.r, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, nil, fmt.Errorf("record cut short: %w", err)
	}
	ts := int64(p.order.Uint32(p.hdr[0:4]))*1e9 + int64(p.order.Uint32(p.hdr[4:8]))*p.frac
	return p.link, ts, data, nil
}

// ngSource reads pcapng through pcapgo, each packet with its interface's link type.
type ngSource struct{ r *pcapgo.NgReader }

func (s ngSource) next() (layers.LinkType, int64, []byte, error) {
	data, ci, err := s.r.ZeroCopyReadPacketData()
	if err != nil {
		return 0, 0, nil, err
	}
	if ci.CaptureLength > MaxSnapLen { // blockLimiter has refused such blocks already
		return 0, 0, nil, tooLong("captured length", uint64(ci.CaptureLength), MaxSnapLen)
	}
	link := s.r.LinkType()
	if len(ci.AncillaryData) > 0 {
		if l, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			link = l
		}
	}
	return link, ci.Timestamp.UnixNano(), data, nil
}

// pcapng block types whose captured length blockLimiter checks.
const (
	ngPacket         = 2 // obsolete Packet Block
	ngSimplePacket   = 3
	ngEnhancedPacket = 6

	ngByteOrderMagic = 0x1a2b3c4d
)

// blockLimiter passes a pcapng stream through, one block at a time, and refuses a
// block before pcapgo reads it if its length is over maxBlock or the packet it holds
// is longer than MaxSnapLen. pcapgo sizes its reads from these lengths.
type blockLimiter struct {
	r     *bufio.Reader
	order binary.ByteOrder // of the current section
	left  int              // bytes of the current block not yet passed on
	err   error
}

func (l *blockLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.left == 0 {
		if l.err = l.nextBlock(); l.err != nil {
			return 0, l.err
		}
	}
	n, err := l.r.Read(p[:min(len(p), l.left)])
	l.left -= n
	return n, err
}

// nextBlock checks the block that starts here and sets left to its length.
func (l *blockLimiter) nextBlock() error {
	h, err := l.r.Peek(28)
	if len(h) < 12 {
		if len(h) == 0 && err != nil {
			return err // io.EOF between blocks: the end
		}
		l.left = len(h) // a cut-short block: let pcapgo report it
		return nil
	}
	if binary.LittleEndian.Uint32(h[0:4]) == magicNG {
		// A section header block sets the byte order of its section.
		switch bom := h[8:12]; {
		case binary.LittleEndian.Uint32(bom) == ngByteOrderMagic:
			l.order = binary.LittleEndian
		case binary.BigEndian.Uint32(bom) == ngByteOrderMagic:
			l.order = binary.BigEndian
		default:
			return errors.New("pcapng section header: bad byte-order magic")
		}
	}
	if l.order == nil {
		return errors.New("pcapng: no section header")
	}
	typ, length := l.order.Uint32(h[0:4]), l.order.Uint32(h[4:8])
	if length < 12 || length%4 != 0 {
		return fmt.Errorf("pcapng block length %d is not valid", length)
	}
	if length > maxBlock {
		return tooLong("pcapng block length", uint64(length), maxBlock)
	}
	var caplen uint32
	switch typ {
	case ngEnhancedPacket, ngPacket:
		if len(h) >= 24 {
			caplen = l.order.Uint32(h[20:24])
		}
	case ngSimplePacket:
		// The packet fills the block after its header, original length and
		// trailing length, padded to 4 bytes; its original length may be less.
		caplen = length - 16
		if len(h) >= 12 {
			caplen = min(caplen, l.order.Uint32(h[8:12]))
		}
	}
	if caplen > MaxSnapLen {
		return tooLong("captured length", uint64(caplen), MaxSnapLen)
	}
	l.left = int(length)
	return nil
}
