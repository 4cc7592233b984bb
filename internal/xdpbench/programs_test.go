package xdpbench

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root, or fails it when CI is set, so
// that CI cannot pass by skipping.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root, and CI is set")
		}
		t.Skip("needs root")
	}
}

func loadProgram(t *testing.T, spec *ebpf.ProgramSpec) *ebpf.Program {
	t.Helper()
	requireRoot(t)
	p, err := ebpf.NewProgram(spec)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) {
		if os.Getenv("CI") != "" {
			t.Fatalf("kernel refuses the program, and CI is set: %v", err)
		}
		t.Skipf("kernel refuses the program: %v", err)
	}
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func runXDP(t *testing.T, p *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	rc, err := p.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	return rc, out[:len(frame)]
}

func TestReflector(t *testing.T) {
	p := loadProgram(t, ReflectorSpec())
	for _, req := range testFrames(t) {
		rc, out := runXDP(t, p, req)
		if rc != xdpTX || !bytes.Equal(out, SwappedReply(req)) {
			t.Fatalf("action %d, frame\n%x\nwant\n%x", rc, out, SwappedReply(req))
		}
	}
	other := bytes.Clone(testFrames(t)[0])
	other[offOuterUDP+3]++ // not the GENEVE port
	if rc, out := runXDP(t, p, other); rc != xdpPass || !bytes.Equal(out, other) {
		t.Fatalf("UDP to another port: action %d", rc)
	}
	if rc, _ := runXDP(t, p, other[:offGeneve-1]); rc != xdpPass {
		t.Fatalf("short frame: action %d", rc)
	}
}

func TestDrop(t *testing.T) {
	p := loadProgram(t, DropSpec())
	if rc, _ := runXDP(t, p, testFrames(t)[0]); rc != xdpDrop {
		t.Fatalf("action %d", rc)
	}
}

func TestChecker(t *testing.T) {
	requireRoot(t)
	frames := testFrames(t)
	spec, err := CheckerSpec(CheckerConfig{Spec: testSpec(), GeneveHdr: GeneveCheckedPrefix(frames)})
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer coll.Close()
	b := &Bench{checker: coll}
	p := coll.Programs["wb_check"]

	check := func(name string, frame []byte, action uint32, want Counts) {
		t.Helper()
		before, err := b.Counts()
		if err != nil {
			t.Fatal(err)
		}
		if rc, _ := runXDP(t, p, frame); rc != action {
			t.Errorf("%s: action %d, want %d", name, rc, action)
		}
		after, _ := b.Counts()
		if got := (Counts{after.Good - before.Good, after.Bad - before.Bad, after.Other - before.Other}); got != want {
			t.Errorf("%s: counted %+v, want %+v", name, got, want)
		}
	}
	good, bad, other := Counts{Good: 1}, Counts{Bad: 1}, Counts{Other: 1}
	for i, f := range frames {
		check("reply "+string(rune('0'+i)), SwappedReply(f), xdpDrop, good)
	}
	reply := SwappedReply(frames[1])
	check("the request", frames[1], xdpDrop, bad)
	mutate := func(name string, off int) {
		b := bytes.Clone(reply)
		b[off] ^= 0x40
		check(name, b, xdpDrop, bad)
	}
	mutate("source address", offOuterIP+12)
	mutate("destination address", offOuterIP+19)
	mutate("source port", offOuterUDP+1)
	mutate("destination port", offOuterUDP+3)
	mutate("GENEVE options length", offGeneve)
	mutate("attachment id", offGeneve+geneveCheckedLen-5)
	mutate("last checked GENEVE byte", offGeneve+geneveCheckedLen-1)
	mutate("magic after inner TCP", offInnerL4+tcpLen+7)
	mutate("inner protocol", offInnerIP+9)
	mutate("IHL", offOuterIP)
	// The flow cookie's value is per flow, so not compared here (the
	// byte check compares it).
	cookie := bytes.Clone(reply)
	cookie[offGeneve+geneveLen-1] ^= 0xff
	check("cookie", cookie, xdpDrop, good)
	check("truncated inner TCP", reply[:offInnerL4+tcpLen+4], xdpDrop, bad)
	check("too short to be a reply", reply[:60], xdpPass, other)
	notUDP := bytes.Clone(reply)
	notUDP[offOuterIP+9] = 6
	check("outer TCP", notUDP, xdpPass, other)
	arp := bytes.Clone(reply)
	arp[12], arp[13] = 0x08, 0x06
	check("ARP", arp, xdpPass, other)

}
