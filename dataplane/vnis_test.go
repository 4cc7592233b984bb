package dataplane

import (
	"net/netip"
	"testing"
	"time"
)

// vniRig is the decoding part of the mirror pipeline with one session, "web" on
// VNI 4242, and no catch-all.
func vniRig(t *testing.T, v *VXLANDecode) (*Pipeline, *Session) {
	t.Helper()
	web := &Session{Index: 1, Name: "web", VNI: 4242}
	v.Sessions = NewSessions([]*Session{web})
	v.MirrorEndpoints = []uint64{7}
	p := NewPipeline(&GeneveDecode{}, v)
	p.SetSessions(1)
	return p, web
}

func TestVNIsSeen(t *testing.T) {
	p, web := vniRig(t, &VXLANDecode{})
	frame := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40000, 443, 10))
	eni1, eni2, eni3 := netip.MustParseAddr("10.0.1.25"), netip.MustParseAddr("10.0.1.26"), netip.MustParseAddr("10.0.1.27")
	w1, w2 := p.NewWorker(), p.NewWorker()
	b := NewBatch(8)
	loadMirror(b, []mirrorIn{fromENI(eni1, 4242, frame), fromENI(eni1, 7331466, frame), fromENI(eni2, 7331466, frame),
		rawVXLAN([]byte{1, 2, 3}, eni1)}, mirrorT0)
	w1.Process(b)
	if got := b.Slots[1].Action(); got != ActionNoSession {
		t.Fatalf("unknown VNI: action %v, want no_session", got)
	}
	// The second worker sees the unknown VNI later, from another ENI, through a GWLB
	// endpoint: the sum has its packets and the latest source.
	loadMirror(b, []mirrorIn{viaGWLB(t, eni3, 7331466, frame), fromENI(eni2, 4242, frame)}, mirrorT0+int64(time.Second))
	w2.Process(b)

	vnis, overflow := p.VNIs()
	if overflow != 0 {
		t.Errorf("overflow %d, want 0", overflow)
	}
	want := []VNIStat{
		{VNI: 4242, Session: web, Packets: 2, LastSource: eni2, LastSeen: mirrorT0 + int64(time.Second)},
		{VNI: 7331466, Packets: 3, LastSource: eni3, LastSeen: mirrorT0 + int64(time.Second)},
	}
	if len(vnis) != len(want) {
		t.Fatalf("VNIs = %+v, want %+v", vnis, want)
	}
	for i := range want {
		if vnis[i] != want[i] {
			t.Errorf("VNIs[%d] = %+v, want %+v", i, vnis[i], want[i])
		}
	}
}

func TestVNIsCap(t *testing.T) {
	p, _ := vniRig(t, &VXLANDecode{TrackVNIs: 4})
	w := p.NewWorker()
	frame := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40000, 443, 10))
	eni := netip.MustParseAddr("10.0.1.25")
	b := NewBatch(16)
	var ins []mirrorIn
	for vni := range uint32(10) {
		ins = append(ins, fromENI(eni, 100+vni, frame))
	}
	loadMirror(b, ins, mirrorT0)
	w.Process(b)
	loadMirror(b, ins, mirrorT0+1) // the same ten again: the first four counted twice, the rest overflow
	w.Process(b)
	vnis, overflow := p.VNIs()
	if len(vnis) != 4 || overflow != 12 {
		t.Fatalf("VNIs = %+v, overflow %d; want 4 tracked, overflow 12", vnis, overflow)
	}
	for i, v := range vnis {
		if v.VNI != 100+uint32(i) || v.Packets != 2 {
			t.Errorf("VNIs[%d] = %+v, want VNI %d with 2 packets", i, v, 100+i)
		}
	}
	if got := p.Totals().Packet(EncapVXLAN, ActionNoSession); got != 20 {
		t.Errorf("no_session %d, want 20: tracking never changes what becomes of a datagram", got)
	}
}

// TestVNIsNoAllocs: counting VNIs, new ones included, up to the cap and past it,
// allocates nothing on the packet path.
func TestVNIsNoAllocs(t *testing.T) {
	p, _ := vniRig(t, &VXLANDecode{TrackVNIs: 64})
	w := p.NewWorker()
	frame := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40000, 443, 10))
	eni := netip.MustParseAddr("10.0.1.25")
	const n = 8
	b := NewBatch(n)
	ins := make([]mirrorIn, n)
	for i := range ins {
		ins[i] = fromENI(eni, 4242, frame)
	}
	loadMirror(b, ins, mirrorT0)
	vni := uint32(1000)
	run := func() {
		for i := range b.Slots[:n] {
			s := &b.Slots[i]
			s.Reset()
			s.Encap = EncapVXLAN
			s.Outer.Src = eni
			s.Buf[4], s.Buf[5], s.Buf[6] = byte(vni>>16), byte(vni>>8), byte(vni) // a new VNI each packet
			vni++
		}
		w.Process(b)
	}
	if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
		t.Errorf("VNI counting allocates %.1f times per batch, want 0", allocs)
	}
	vnis, overflow := p.VNIs()
	if len(vnis) != 64 || overflow == 0 {
		t.Errorf("%d VNIs tracked, overflow %d; want 64 and some overflow", len(vnis), overflow)
	}
}

func TestVXLANAllowedSources(t *testing.T) {
	p, _ := vniRig(t, &VXLANDecode{AllowedSources: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}})
	w := p.NewWorker()
	frame := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40000, 443, 10))
	in, out := netip.MustParseAddr("10.0.1.25"), netip.MustParseAddr("10.0.9.25")
	b := NewBatch(8)
	loadMirror(b, []mirrorIn{fromENI(in, 4242, frame), fromENI(out, 4242, frame), fromENI(out, 99, frame),
		viaGWLB(t, in, 4242, frame), viaGWLB(t, out, 4242, frame)}, mirrorT0)
	w.Process(b)
	want := []Action{ActionAllow, ActionSourceDenied, ActionSourceDenied, ActionAllow, ActionSourceDenied}
	for i, a := range want {
		if got := b.Slots[i].Action(); got != a {
			t.Errorf("datagram %d: action %v, want %v", i, got, a)
		}
	}
	tot := p.Totals()
	if got := tot.Packet(EncapVXLAN, ActionSourceDenied); got != 2 {
		t.Errorf("vxlan source_denied %d, want 2", got)
	}
	if got := tot.Packet(EncapGeneve, ActionSourceDenied); got != 1 {
		t.Errorf("geneve source_denied %d, want 1", got)
	}
	if got := tot.Sessions[1].Received; got != 2 {
		t.Errorf("session received %d, want 2", got)
	}
	vnis, _ := p.VNIs()
	if len(vnis) != 1 || vnis[0].VNI != 4242 || vnis[0].Packets != 2 || vnis[0].LastSource != in {
		t.Errorf("VNIs = %+v: denied sources must not be tracked", vnis)
	}
}

// TestVNIsReadWhileCounting: scrapes read the published counts while the worker
// counts (run with -race).
func TestVNIsReadWhileCounting(t *testing.T) {
	p, _ := vniRig(t, &VXLANDecode{})
	w := p.NewWorker()
	frame := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40000, 443, 10))
	b := NewBatch(4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			src := netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})
			loadMirror(b, []mirrorIn{fromENI(src, 4242, frame), fromENI(src, uint32(i%7), frame)}, mirrorT0+int64(i))
			w.Process(b)
		}
	}()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		vnis, _ := p.VNIs()
		for _, v := range vnis {
			if v.Packets == 0 || !v.LastSource.Is4() || v.LastSource.As4()[0] != 10 {
				t.Fatalf("torn read: %+v", v)
			}
		}
	}
	vnis, _ := p.VNIs()
	var total uint64
	for _, v := range vnis {
		total += v.Packets
	}
	if len(vnis) != 8 || total != 400 {
		t.Errorf("%d VNIs, %d packets; want 8 and 400", len(vnis), total)
	}
}
