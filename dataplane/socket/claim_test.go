package socket

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"weir/dataplane"
)

// TestSecondInstance: a second backend on the same listen address, as a second weir
// would open, fails at New with a clear error instead of joining the first one's
// SO_REUSEPORT group; so does one on the wildcard address of the same port, and one
// on a port a plain UDP socket holds. Once the first closes, the address is free.
func TestSecondInstance(t *testing.T) {
	port := freePort(t)
	addr := netip.AddrPortFrom(applianceIP, port)
	open := func(a netip.AddrPort, e dataplane.Encap) (*Backend, error) {
		return New(Config{Listeners: []Listener{{Addr: a, Encap: e}}, Workers: 2, Reply: ReplyUDP})
	}
	first, err := open(addr, dataplane.EncapGeneve)
	if err != nil {
		t.Fatal(err)
	}
	second, err := open(addr, dataplane.EncapGeneve)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second backend on the same address opened: it would share the first one's traffic")
	}
	want := fmt.Sprintf("gwlb.listen %s is already in use by another process (another weir?)", addr)
	if !errors.Is(err, ErrInUse) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("second backend: %v, want %q (ErrInUse)", err, want)
	}
	// Same port, wildcard address: the kernel would route 127.0.0.1 to the first
	// and everything else to the second; refused too.
	if b, err := open(netip.AddrPortFrom(netip.IPv4Unspecified(), port), dataplane.EncapVXLAN); err == nil {
		b.Close()
		t.Error("a backend on 0.0.0.0 of a port already in use on 127.0.0.1 opened")
	} else if !errors.Is(err, ErrInUse) || !strings.HasPrefix(err.Error(), fmt.Sprintf("mirror.listen 0.0.0.0:%d is already in use", port)) {
		t.Errorf("wildcard backend: %v", err)
	}

	first.Close()
	again, err := open(addr, dataplane.EncapGeneve)
	if err != nil {
		t.Fatalf("after the first backend closed: %v", err)
	}
	again.Close()

	// Not a weir: a plain socket on the port.
	plain, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if b, err := open(addr, dataplane.EncapGeneve); err == nil {
		b.Close()
		t.Error("a backend opened on a port a plain UDP socket holds")
	} else if !errors.Is(err, ErrInUse) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("port held by a plain socket: %v, want %q", err, want)
	}
}
