package main

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// packetCapture records every frame an interface receives into a pcap file, from an
// AF_PACKET socket with a large buffer. Unlike stopping a live tshark, stop drains the
// socket first, so the file holds every frame that arrived.
type packetCapture struct {
	fd   int
	f    *os.File
	w    *pcapgo.Writer
	n    atomic.Int64
	err  error
	done chan struct{}
	mu   sync.Mutex
	stop bool

	keep func(pkttype uint8, frame []byte) bool // which frames to write
}

// received keeps the frames an interface receives, except outer IPv4 TCP (health
// checks and scrapes).
func received(pkttype uint8, f []byte) bool {
	if pkttype == unix.PACKET_OUTGOING {
		return false
	}
	return !(len(f) > 23 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 6)
}

// sent keeps the frames an interface sends.
func sent(pkttype uint8, _ []byte) bool { return pkttype == unix.PACKET_OUTGOING }

func startCapture(t *testing.T, ns, ifname, path string, keep func(pkttype uint8, frame []byte) bool) *packetCapture {
	t.Helper()
	c := &packetCapture{done: make(chan struct{}), keep: keep}
	err := inNetns(ns, func() error {
		iface, err := netInterfaceIndex(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20)
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: iface})
	})
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if c.f, err = os.Create(path); err != nil {
		t.Fatal(err)
	}
	c.w = pcapgo.NewWriter(c.f)
	if err := c.w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	go c.loop()
	t.Cleanup(func() { c.finish() })
	return c
}

func (c *packetCapture) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			c.mu.Lock()
			stop := c.stop
			c.mu.Unlock()
			if stop {
				return // stop was asked and the socket is empty
			}
			continue
		}
		if err != nil {
			c.err = err
			return
		}
		var pkttype uint8
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			pkttype = ll.Pkttype
		}
		if !c.keep(pkttype, buf[:n]) {
			continue
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: n, Length: n}
		if err := c.w.WritePacket(ci, buf[:n]); err != nil {
			c.err = err
			return
		}
		c.n.Add(1)
	}
}

// count is how many frames have been written so far.
func (c *packetCapture) count() int { return int(c.n.Load()) }

// finish drains what has arrived, closes the file and returns the frames written.
func (c *packetCapture) finish() (int, error) {
	c.mu.Lock()
	already := c.stop
	c.stop = true
	c.mu.Unlock()
	if !already {
		<-c.done
		unix.Close(c.fd)
		if err := c.f.Close(); err != nil && c.err == nil {
			c.err = err
		}
	}
	return int(c.n.Load()), c.err
}

func htons(v uint16) uint16 { return v>>8 | v<<8 }

func netInterfaceIndex(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}
