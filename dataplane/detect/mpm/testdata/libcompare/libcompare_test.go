// Package libcompare measures the Go Aho-Corasick libraries on the module proxy
// against weir's mpm prefilter, on the same patterns and traffic as mpm's
// compare_test.go. It is a module of its own, under testdata, so that the
// libraries never enter weir's go.mod. Run: go test -bench . -benchtime 3x
package libcompare

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	bobu "github.com/BobuSumisu/aho-corasick"
	coregx "github.com/coregx/ahocorasick"

	"weir/dataplane/detect/mpm"
	"weir/dataplane/detect/rulegen"
)

// threadCPU and measureCPU are as in mpm's compare_test.go: the VM is shared, so
// throughput is also given per second of this thread's CPU time (cpu-MB/s).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measureCPU(b *testing.B, total int64, scan func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(total)
	b.ReportAllocs()
	scan()
	start := threadCPU()
	n := 0
	for b.Loop() {
		scan()
		n++
	}
	if cpu := threadCPU() - start; cpu > 0 {
		b.ReportMetric(float64(total)*float64(n)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}

var sizes = []int{100, 1000, 10000, 30000}

// Neither library has nocase: both get every pattern folded to lower case and
// scan a lower-cased copy of the payload (the copy is counted), as an engine
// using them would; exact case is then the engine's verification's business.
func folded(n int) [][]byte {
	ps := rulegen.GeneratePatterns(n, 1)
	for _, p := range ps {
		for i, c := range p {
			if 'A' <= c && c <= 'Z' {
				p[i] = c + 'a' - 'A'
			}
		}
	}
	return ps
}

func lowerInto(dst, src []byte) []byte {
	dst = dst[:0]
	for _, c := range src {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func traffic() ([][]byte, int64) {
	t := rulegen.Traffic(2000, 2)
	total := int64(0)
	for _, p := range t {
		total += int64(len(p))
	}
	return t, total
}

func heap(f func() any) (any, float64) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&b)
	return v, float64(b.HeapAlloc-a.HeapAlloc) / 1e6
}

func BenchmarkScan(b *testing.B) {
	tr, total := traffic()
	b.Run("baseline-lower", func(b *testing.B) {
		var buf []byte
		measureCPU(b, total, func() {
			for _, p := range tr {
				buf = lowerInto(buf, p)
			}
		})
	})
	for _, n := range sizes {
		ps := folded(n)
		b.Run(fmt.Sprintf("mpm/%d", n), func(b *testing.B) {
			var bld mpm.Builder
			for i, p := range rulegen.GeneratePatterns(n, 1) {
				bld.Add(p, i%3 == 0, int32(i))
			}
			m := bld.Build()
			var hits mpm.Hits
			measureCPU(b, total, func() {
				for _, p := range tr {
					m.Scan(p, &hits)
				}
			})
		})
		b.Run(fmt.Sprintf("coregx/%d", n), func(b *testing.B) {
			a, err := coregx.NewBuilder().SetMatchKind(coregx.LeftmostFirst).AddPatterns(ps).Build()
			if err != nil {
				b.Skip(err)
			}
			seen := make([]uint32, n)
			gen := uint32(0)
			var buf []byte
			measureCPU(b, total, func() {
				for _, p := range tr {
					gen++
					buf = lowerInto(buf, p)
					for _, m := range a.FindAllOverlapping(buf) {
						seen[m.PatternID] = gen
					}
				}
			})
		})
		b.Run(fmt.Sprintf("bobusumisu/%d", n), func(b *testing.B) {
			tr2 := bobu.NewTrieBuilder().AddPatterns(ps).Build()
			seen := make([]uint32, n)
			gen := uint32(0)
			var buf []byte
			measureCPU(b, total, func() {
				for _, p := range tr {
					gen++
					buf = lowerInto(buf, p)
					tr2.Walk(buf, func(end, n, pattern int64) bool {
						seen[pattern] = gen
						return true
					})
				}
			})
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range sizes {
		ps := folded(n)
		b.Run(fmt.Sprintf("coregx/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := coregx.NewBuilder().AddPatterns(ps).Build(); err != nil {
					b.Fatal(err)
				}
			}
			_, mb := heap(func() any { a, _ := coregx.NewBuilder().AddPatterns(ps).Build(); return a })
			b.ReportMetric(mb, "MB-heap")
		})
		b.Run(fmt.Sprintf("bobusumisu/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bobu.NewTrieBuilder().AddPatterns(ps).Build()
			}
			_, mb := heap(func() any { return bobu.NewTrieBuilder().AddPatterns(ps).Build() })
			b.ReportMetric(mb, "MB-heap")
		})
	}
}
