package mpm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"weir/dataplane/detect/rulegen"
)

// The candidates for the prefilter, measured on this project's 2-core VM with
// rulegen's patterns (every third nocase) and mixed traffic (HTTP, TLS, DNS,
// random; 60-1460 bytes). Scan is MB/s of payload, build is for the whole set.
// The Go libraries were measured by testdata/libcompare, a module of its own so
// that they stay out of weir's go.mod.
//
// RESULTS (filled in below from `go test -bench . -benchtime 2x` runs)

// threadCPU is the CPU time the calling thread has used. The VM is shared with
// other builds, so wall-clock MB/s swings with their load; cpu-MB/s (payload bytes
// per second of this thread's CPU time) is what the matcher itself costs.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU runs scan over traffic b.N times on a locked thread and reports
// cpu-MB/s.
func measureCPU(b *testing.B, total int64, scan func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(total)
	b.ReportAllocs()
	scan() // warm up: Hits grows to its working size
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

var benchSizes = []int{100, 1000, 10000, 30000}

func benchBuilder(b testing.TB, n int) *Builder {
	var bld Builder
	for i, p := range rulegen.GeneratePatterns(n, 1) {
		if err := bld.Add(p, i%3 == 0, int32(i)); err != nil {
			b.Fatal(err)
		}
	}
	return &bld
}

func benchTraffic() ([][]byte, int64) {
	traffic := rulegen.Traffic(2000, 2)
	total := int64(0)
	for _, p := range traffic {
		total += int64(len(p))
	}
	return traffic, total
}

func BenchmarkScan(b *testing.B) {
	traffic, total := benchTraffic()
	// The floor for any window filter: read, fold and hash each position's window,
	// nothing more. The VM's load swings; ratios to this are steadier than MB/s.
	b.Run("baseline-hash", func(b *testing.B) {
		var sink uint64
		measureCPU(b, total, func() {
			for _, p := range traffic {
				for i := 0; i+8 <= len(p); i++ {
					sink ^= fold(binary.LittleEndian.Uint64(p[i:])) * hashMul
				}
			}
		})
		if sink == 1 {
			b.Log(sink)
		}
	})
	for _, n := range benchSizes {
		m := benchBuilder(b, n).Build()
		b.Run(fmt.Sprintf("qgram/%d", n), func(b *testing.B) {
			var hits Hits
			found, scans := 0, 0
			measureCPU(b, total, func() {
				for _, p := range traffic {
					m.Scan(p, &hits)
					found += len(hits.IDs())
				}
				scans += len(traffic)
			})
			b.ReportMetric(float64(found)/float64(scans), "hits/payload")
		})
		a := buildAC(m)
		b.Run(fmt.Sprintf("ac/%d", n), func(b *testing.B) {
			var hits Hits
			measureCPU(b, total, func() {
				for _, p := range traffic {
					a.scan(p, &hits)
				}
			})
		})
	}
}

// heapGrowth is how much the live heap grew while f ran (what it built and kept).
func heapGrowth(f func() any) (any, uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return v, after.HeapAlloc - before.HeapAlloc
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range benchSizes {
		bld := benchBuilder(b, n)
		b.Run(fmt.Sprintf("qgram/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var m *Matcher
			for b.Loop() {
				m = bld.Build()
			}
			_, heap := heapGrowth(func() any { return bld.Build() })
			b.ReportMetric(float64(m.MemoryBytes())/1e6, "MB-held")
			b.ReportMetric(float64(heap)/1e6, "MB-heap")
		})
		b.Run(fmt.Sprintf("ac/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			m := bld.Build()
			var a *acMatcher
			for b.Loop() {
				a = buildAC(m)
			}
			_, heap := heapGrowth(func() any { return buildAC(m) })
			b.ReportMetric(float64(a.memoryBytes())/1e6, "MB-held")
			b.ReportMetric(float64(heap)/1e6, "MB-heap")
		})
	}
}
