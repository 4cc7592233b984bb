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
// Measured 2026-11-29 on the shared 2-core VM with a load average of 4-19 (other
// builds and fuzzers), so wall-clock MB/s meant little; cpu-MB/s is payload per
// second of the benchmark thread's CPU time, and even that moves with the load
// (caches and the sibling hyperthread are shared): the baseline loops, which only
// read and hash (or lower-case) each position, ran at 376-590 (baseline-hash) and
// 260-373 (baseline-lower) cpu-MB/s. Read the columns as ratios. Ranges are over
// the runs of this file and testdata/libcompare, for the code as committed.
//
//	scan, cpu-MB/s       100       1,000     10,000    30,000   allocs
//	qgram (this pkg)     94-139    86-113    69-100    36-63    0
//	  + branch-free gate           181-214   106-145   53-67    0   (later, load 0.5-1)
//	ac (ac_test.go)      188-224   100-104   34-36     11-14    0
//	coregx v0.3.1        134-168   96        20-21     13-15    52-3,026 per pass
//	BobuSumisu v1.0.3    74-81     78-79     32-34     15-18    0
//
//	build (Add+Build)    100             1,000          10,000          30,000
//	qgram                0.2 ms, 0.02 MB 3 ms, 0.10 MB  33 ms, 0.8 MB   0.21 s, 2.6 MB
//	ac                   0.6 ms, 0.16 MB 24 ms, 0.85 MB 0.3 s, 5.2 MB   1.0 s, 13 MB
//	coregx               6 ms, 1.4 MB    132 ms, 10 MB  1.4 s, 90 MB    5.4 s, 254 MB
//	BobuSumisu           2 ms, 2.8 MB    38 ms, 21 MB   0.4 s, 181 MB   2.0 s, 511 MB
//
// The q-gram filter wins where the engine will be: 2-3x the others at 10,000
// patterns, 3-4x at 30,000, level at 1,000; it builds 10-40x faster in 1/10 to
// 1/200 of the memory. Aho-Corasick is faster with 100 patterns (one lookup a
// byte, all in cache; the filter always pays three probes), but its deep states
// fall out of cache as the set grows, and every byte pays for that; the filter's
// bitmaps stay small and its cost grows only with the comparisons (0.01 a byte at
// 10,000 patterns, see TestFilterSelectivity). Neither library has nocase (the
// engine would lower-case each payload first, counted above); coregx allocates
// its match list on every scan; BobuSumisu keeps a 256-entry row per state (511
// MB at 30,000). Neither is in weir's go.mod.
//
// Tried and dropped: filing patterns of 11+ bytes under four consecutive 8-byte
// windows so that the long filter is probed at every fourth position only (or
// 9+ bytes, two windows, every second): in A/B runs it was no faster at 10,000
// patterns and slower at 30,000, as the 8- to 10-byte patterns it moves to the
// 4-byte table make that one hit more. What did pay (1.7x): keeping calls out of
// the filter loop (see scanWindows).

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
			patterns := rulegen.GeneratePatterns(n, 1)
			var m *Matcher
			for b.Loop() { // Add and Build, as the engine will
				var bld Builder
				for i, p := range patterns {
					if err := bld.Add(p, i%3 == 0, int32(i)); err != nil {
						b.Fatal(err)
					}
				}
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
