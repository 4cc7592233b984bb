package intel

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

const scaleEntries = 1_000_000

// scaleIPs writes n IP entries: mostly IPv4 /32s and /24s spread over the space,
// and one in sixteen an IPv6 /48, so the ranges do not merge away.
func scaleIPs(tb testing.TB, n int) string {
	var b strings.Builder
	b.Grow(n * 20)
	b.WriteString("# generated\n")
	for i := range n {
		x := uint32(i) * 2654435761 // spread, distinct for distinct i
		switch {
		case i%16 == 0:
			fmt.Fprintf(&b, "2001:db8:%x:%x::/64\n", x>>16, x&0xffff)
		case i%4 == 0:
			fmt.Fprintf(&b, "%d.%d.%d.0/24\n", byte(x>>24), byte(x>>16), byte(x>>8))
		default:
			fmt.Fprintf(&b, "%d.%d.%d.%d\n", byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
		}
	}
	path := filepath.Join(tb.TempDir(), "ips.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func scaleDomains(tb testing.TB, n int) string {
	var b strings.Builder
	b.Grow(n * 24)
	for i := range n {
		fmt.Fprintf(&b, "h%x.bad%d.example\n", uint32(i)*2654435761, i%1000)
	}
	path := filepath.Join(tb.TempDir(), "domains.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestScale loads a million entries of each kind and checks matches at that size.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds million-entry lists")
	}
	ips, err := LoadIPs(scaleIPs(t, scaleEntries), "c", false)
	if err != nil {
		t.Fatal(err)
	}
	doms, err := LoadDomains(scaleDomains(t, scaleEntries), "c", true)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(ips, doms)
	for _, p := range ips.prefixes[:1000] {
		if got, ok := s.MatchIP(p.Addr()); !ok || got != ips {
			t.Fatalf("%s not matched", p)
		}
	}
	for _, d := range doms.domains[:1000] {
		if got, ok := s.MatchDomain([]byte("www." + d)); !ok || got != doms {
			t.Fatalf("%s not matched", d)
		}
	}
	if _, ok := s.MatchDomain([]byte("h0.bad1000.example")); ok {
		t.Fatal("unlisted name matched")
	}
	v4, v6, nd := s.Sizes()
	if v6 != scaleEntries/16 || nd != scaleEntries || v4 == 0 {
		t.Fatalf("sizes v4 %d v6 %d domains %d", v4, v6, nd)
	}
}

// heapAfter runs build and reports the live heap it added, in MB.
func heapAfter(build func() any) (float64, any) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20), v
}

// cpuTime is the CPU time the process has used, all threads: on a shared machine
// it says more about the cost of a load than the wall clock does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkLoadIPs1M(b *testing.B) {
	path := scaleIPs(b, scaleEntries)
	b.ReportAllocs()
	var mb float64
	var cpu time.Duration
	for b.Loop() {
		var s any
		mb, s = heapAfter(func() any {
			start := cpuTime()
			defer func() { cpu += cpuTime() - start }()
			l, err := LoadIPs(path, "c", true)
			if err != nil {
				b.Fatal(err)
			}
			return NewSet(l)
		})
		runtime.KeepAlive(s)
	}
	b.ReportMetric(mb, "MB-live")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

func BenchmarkLoadDomains1M(b *testing.B) {
	path := scaleDomains(b, scaleEntries)
	b.ReportAllocs()
	var mb float64
	var cpu time.Duration
	for b.Loop() {
		var s any
		mb, s = heapAfter(func() any {
			start := cpuTime()
			defer func() { cpu += cpuTime() - start }()
			l, err := LoadDomains(path, "c", true)
			if err != nil {
				b.Fatal(err)
			}
			return NewSet(l)
		})
		runtime.KeepAlive(s)
	}
	b.ReportMetric(mb, "MB-live")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// The match benchmarks run at a million entries and, as a baseline measured in
// the same run, at a thousand, where everything fits in cache: on a shared
// machine the ratio says more than either figure.
func BenchmarkMatchIP(b *testing.B) {
	for _, n := range []int{1000, scaleEntries} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchMatchIP(b, n) })
	}
}

func BenchmarkMatchDomain(b *testing.B) {
	for _, n := range []int{1000, scaleEntries} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchMatchDomain(b, n) })
	}
}

func benchMatchIP(b *testing.B, n int) {
	l, err := LoadIPs(scaleIPs(b, n), "c", true)
	if err != nil {
		b.Fatal(err)
	}
	s := NewSet(l)
	// Half listed, half not; v4 and v6.
	var addrs []netip.Addr
	for i := range 1024 {
		a := l.prefixes[i*97%len(l.prefixes)].Addr()
		if i%2 == 1 {
			a = a.Next().Next()
		}
		addrs = append(addrs, a)
	}
	b.ReportAllocs()
	start := cpuTime()
	i := 0
	for b.Loop() {
		s.MatchIP(addrs[i&1023])
		i++
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func benchMatchDomain(b *testing.B, n int) {
	l, err := LoadDomains(scaleDomains(b, n), "c", true)
	if err != nil {
		b.Fatal(err)
	}
	s := NewSet(l)
	var names [][]byte
	for i := range 1024 {
		d := l.domains[i*97%len(l.domains)]
		if i%2 == 1 {
			d = "not" + d
		}
		names = append(names, []byte("www.cdn."+strings.ToUpper(d[:1])+d[1:]))
	}
	b.ReportAllocs()
	start := cpuTime()
	i := 0
	for b.Loop() {
		s.MatchDomain(names[i&1023])
		i++
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
