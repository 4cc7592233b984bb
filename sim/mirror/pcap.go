package mirror

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureReader reads the frames of a pcap or pcapng file.
type captureReader struct {
	path string
	f    *os.File
	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
}

// pcapngMagic is the block type of a pcapng Section Header Block.
const pcapngMagic = 0x0a0d0d0a

func openCapture(path string) (*captureReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mirrorsim: %w", err)
	}
	c := &captureReader{path: path, f: f}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mirrorsim: %s: not a pcap or pcapng file: %w", path, err)
	}
	if binary.BigEndian.Uint32(magic) == pcapngMagic {
		c.ng, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		c.pcap, err = pcapgo.NewReader(br)
		if err == nil && c.pcap.LinkType() != layers.LinkTypeEthernet {
			err = fmt.Errorf("link type %v, want Ethernet", c.pcap.LinkType())
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mirrorsim: %s: %w", path, err)
	}
	return c, nil
}

// next returns the next frame (valid until the following call), whether it was
// captured on an Ethernet interface, or nil at the end of the file.
func (c *captureReader) next() (frame []byte, ethernet bool, err error) {
	var ci gopacket.CaptureInfo
	if c.ng != nil {
		frame, ci, err = c.ng.ZeroCopyReadPacketData()
	} else {
		frame, _, err = c.pcap.ZeroCopyReadPacketData()
	}
	if errors.Is(err, io.EOF) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mirrorsim: %s: %w", c.path, err)
	}
	ethernet = true
	if c.ng != nil {
		ifc, ierr := c.ng.Interface(ci.InterfaceIndex)
		ethernet = ierr == nil && ifc.LinkType == layers.LinkTypeEthernet
	}
	if frame == nil {
		frame = []byte{} // an empty record is a runt, not the end
	}
	return frame, ethernet, nil
}

func (c *captureReader) Close() error { return c.f.Close() }
