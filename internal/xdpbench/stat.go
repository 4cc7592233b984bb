package xdpbench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// UserHZ is the unit of /proc/stat's counters. The kernel reports them in
// USER_HZ, which is 100 on every Linux architecture whatever CONFIG_HZ is.
const UserHZ = 100

// CPUTimes is the all-CPU line of /proc/stat, in USER_HZ ticks.
type CPUTimes struct {
	Total uint64 // user+nice+system+idle+iowait+irq+softirq+steal
	Idle  uint64 // idle+iowait
	IRQ   uint64 // irq+softirq
}

// Busy is the time the CPUs spent not idle.
func (c CPUTimes) Busy() uint64 { return c.Total - c.Idle }

// BusySince is the busy CPU time between an earlier reading and c, summed over
// CPUs.
func (c CPUTimes) BusySince(earlier CPUTimes) time.Duration {
	return time.Duration(c.Busy()-earlier.Busy()) * (time.Second / UserHZ)
}

// Stat is the CPU part of /proc/stat: all CPUs, and each CPU in the order
// listed.
type Stat struct {
	All    CPUTimes
	PerCPU []CPUTimes
}

// ParseStat reads the "cpu" and "cpuN" lines of a /proc/stat. guest and
// guest_nice are already counted in user and nice, so they are not added
// again.
func ParseStat(r io.Reader) (Stat, error) {
	var st Stat
	found := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		c, err := parseCPULine(fields)
		if err != nil {
			return Stat{}, err
		}
		if fields[0] == "cpu" {
			st.All, found = c, true
		} else {
			st.PerCPU = append(st.PerCPU, c)
		}
	}
	if err := sc.Err(); err != nil {
		return Stat{}, err
	}
	if !found {
		return Stat{}, errors.New("/proc/stat: no cpu line")
	}
	return st, nil
}

func parseCPULine(fields []string) (CPUTimes, error) {
	if len(fields) < 5 {
		return CPUTimes{}, fmt.Errorf("/proc/stat: %s line has %d fields", fields[0], len(fields))
	}
	var v [8]uint64
	for i := range v {
		if i+1 >= len(fields) {
			break // older kernels lack the last columns
		}
		n, err := strconv.ParseUint(fields[i+1], 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("/proc/stat: %s field %d: %w", fields[0], i+1, err)
		}
		v[i] = n
	}
	var c CPUTimes
	for _, n := range v {
		c.Total += n
	}
	c.Idle = v[3] + v[4]
	c.IRQ = v[5] + v[6]
	return c, nil
}

// TargetBusySince is the CPU time between an earlier reading and s that the
// target can have caused, with the generator pinned to CPU gen: all of every
// other CPU's busy time, and only the interrupt and softirq time of the
// generator's. The generator keeps its CPU busy whatever the target does, so
// there the target's work (a veth's receive side runs in softirq on the
// sending CPU) shows as softirq time taken from the generator's spinning, not
// as more busy time. Without per-CPU lines it is all CPUs' busy time.
func (s Stat) TargetBusySince(earlier Stat, gen int) time.Duration {
	if gen < 0 || gen >= len(s.PerCPU) || len(s.PerCPU) != len(earlier.PerCPU) {
		return s.All.BusySince(earlier.All)
	}
	var ticks uint64
	for i, c := range s.PerCPU {
		if i == gen {
			ticks += c.IRQ - earlier.PerCPU[i].IRQ
			continue
		}
		ticks += c.Busy() - earlier.PerCPU[i].Busy()
	}
	return time.Duration(ticks) * (time.Second / UserHZ)
}

// ReadStat reads /proc/stat.
func ReadStat() (Stat, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return Stat{}, err
	}
	defer f.Close()
	return ParseStat(f)
}
