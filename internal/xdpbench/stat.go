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
	return c, nil
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
