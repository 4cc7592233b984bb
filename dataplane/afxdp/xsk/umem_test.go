package xsk

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNewUMEMRejects(t *testing.T) {
	page := os.Getpagesize()
	for _, tc := range []struct {
		name              string
		frames, frameSize int
		want              string
	}{
		{"frame too small", 16, 1024, "frame size"},
		{"frame not a power of two", 16, 3000, "frame size"},
		{"frame over a page", 16, 2 * page, "frame size"},
		{"no frames", 0, 2048, "count"},
		{"negative frames", -1, 2048, "count"},
		{"too many frames", 1 << 33, 2048, "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := NewUMEM(tc.frames, tc.frameSize)
			if err == nil {
				u.Close()
				t.Fatal("NewUMEM succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestUMEMFrames: addresses map to frames in place, and Frame runs from any
// address inside a frame to that frame's end.
func TestUMEMFrames(t *testing.T) {
	u, err := NewUMEM(4, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.Frames() != 4 || u.FrameSize() != 2048 || u.FreeFrames() != 4 {
		t.Fatalf("Frames %d FrameSize %d FreeFrames %d, want 4 2048 4", u.Frames(), u.FrameSize(), u.FreeFrames())
	}
	for _, tc := range []struct {
		addr    uint64
		wantLen int
	}{
		{0, 2048},
		{256, 2048 - 256}, // an RX descriptor past headroom
		{2047, 1},
		{2048, 2048},
		{3*2048 + 100, 1948},
		{4 * 2048, -1}, // past the end
		{1 << 63, -1},
	} {
		b := u.Frame(tc.addr)
		if tc.wantLen < 0 {
			if b != nil {
				t.Errorf("Frame(%d) = %d bytes, want nil", tc.addr, len(b))
			}
			continue
		}
		if len(b) != tc.wantLen || cap(b) != tc.wantLen {
			t.Errorf("Frame(%d): len %d cap %d, want %d", tc.addr, len(b), cap(b), tc.wantLen)
			continue
		}
		// In place: a write through the frame is seen at the UMEM offset.
		b[0] = byte(tc.addr) + 1
		if u.mem[tc.addr] != byte(tc.addr)+1 {
			t.Errorf("Frame(%d) is not the UMEM's memory", tc.addr)
		}
	}
}

// TestUMEMFreeStack: Alloc hands every frame out once; Free takes any address in a
// frame back, and refuses a double free and an address outside the UMEM.
func TestUMEMFreeStack(t *testing.T) {
	u, err := NewUMEM(3, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	var got []uint64
	for {
		a, ok := u.Alloc()
		if !ok {
			break
		}
		got = append(got, a)
	}
	if want := []uint64{0, 4096, 8192}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	for _, tc := range []struct {
		addr uint64
		want error
	}{
		{4096 + 300, nil},        // inside frame 1: frees frame 1
		{4096, ErrFrameFree},     // frame 1 again
		{4096 + 5, ErrFrameFree}, // still frame 1
		{3 * 4096, ErrFrameRange},
		{0, nil},
		{0, ErrFrameFree},
	} {
		if err := u.Free(tc.addr); !errors.Is(err, tc.want) {
			t.Errorf("Free(%d) = %v, want %v", tc.addr, err, tc.want)
		}
	}
	if u.FreeFrames() != 2 {
		t.Fatalf("FreeFrames %d, want 2", u.FreeFrames())
	}
	// Last freed, first allocated; the frame's base address, not the one freed.
	if a, ok := u.Alloc(); !ok || a != 0 {
		t.Fatalf("Alloc = %d, %v, want 0, true", a, ok)
	}
	if a, ok := u.Alloc(); !ok || a != 4096 {
		t.Fatalf("Alloc = %d, %v, want 4096, true", a, ok)
	}
	if _, ok := u.Alloc(); ok {
		t.Fatal("Alloc succeeded with every frame taken")
	}
}

func TestUMEMAllocs(t *testing.T) {
	u, err := NewUMEM(64, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		a, _ := u.Alloc()
		sink += len(u.Frame(a + 10))
		if err := u.Free(a + 10); err != nil {
			t.Fatal(err)
		}
		_ = u.Free(a) // a double free's error allocates nothing either
	})
	if allocs != 0 {
		t.Fatalf("UMEM operations: %v allocations a run, want 0", allocs)
	}
	_ = sink
}

func BenchmarkUMEMAllocFree(b *testing.B) {
	u, err := NewUMEM(256, 2048)
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	var addrs [32]uint64
	b.ReportAllocs()
	for b.Loop() {
		for i := range addrs {
			addrs[i], _ = u.Alloc()
		}
		for _, a := range addrs {
			u.Free(a)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(addrs)), "ns/frame")
}
