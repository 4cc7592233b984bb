package xdpbench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"weir/internal/netns"
)

// NamespacePrefix starts the names of the bench's namespaces; the pid of the
// process that made them follows, so that a later run can remove what a
// killed one left.
const NamespacePrefix = "wbench-"

// The interfaces, inside the two namespaces, so their names cannot clash with
// anyone else's.
const (
	GenIf = "wbg0"
	DutIf = "wbd0"
)

// Addresses from 198.18.0.0/15, the range set aside for benchmarks (RFC
// 2544); they exist only inside the two namespaces.
var (
	GenIP  = netip.MustParseAddr("198.18.0.1")
	DutIP  = netip.MustParseAddr("198.18.0.2")
	GenMAC = net.HardwareAddr{0x02, 0x77, 0x62, 0, 0, 1}
	DutMAC = net.HardwareAddr{0x02, 0x77, 0x62, 0, 0, 2}
)

// Topology is two namespaces joined by a veth pair with one queue each way.
type Topology struct {
	Gen, Dut           string // namespace names
	GenIndex, DutIndex int    // interface indexes, inside their namespaces
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewTopology makes the namespaces and the veth pair, with addresses and
// permanent neighbour entries (no ARP during a measurement) and IPv6 off (no
// stray router or neighbour solicitations). tag, with the pid, makes the
// names unique. On error it removes what it made.
func NewTopology(tag string) (_ *Topology, err error) {
	id := fmt.Sprintf("%d-%s", os.Getpid(), tag)
	t := &Topology{Gen: NamespacePrefix + id + "-gen", Dut: NamespacePrefix + id + "-dut"}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	steps := [][]string{
		{"ip", "netns", "add", t.Gen},
		{"ip", "netns", "add", t.Dut},
		{"ip", "-n", t.Gen, "link", "add", GenIf, "address", GenMAC.String(), "numtxqueues", "1", "numrxqueues", "1",
			"type", "veth", "peer", "name", DutIf, "address", DutMAC.String(), "numtxqueues", "1", "numrxqueues", "1", "netns", t.Dut},
		{"ip", "-n", t.Gen, "addr", "add", GenIP.String() + "/24", "dev", GenIf},
		{"ip", "-n", t.Dut, "addr", "add", DutIP.String() + "/24", "dev", DutIf},
		{"ip", "netns", "exec", t.Gen, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", t.Dut, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "-n", t.Gen, "link", "set", "lo", "up"},
		{"ip", "-n", t.Dut, "link", "set", "lo", "up"},
		{"ip", "-n", t.Gen, "link", "set", GenIf, "up"},
		{"ip", "-n", t.Dut, "link", "set", DutIf, "up"},
		{"ip", "-n", t.Gen, "neigh", "replace", DutIP.String(), "lladdr", DutMAC.String(), "dev", GenIf, "nud", "permanent"},
		{"ip", "-n", t.Dut, "neigh", "replace", GenIP.String(), "lladdr", GenMAC.String(), "dev", DutIf, "nud", "permanent"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, err
		}
	}
	index := func(ns, name string) (i int, err error) {
		err = netns.Run(ns, func() error {
			ifi, err := net.InterfaceByName(name)
			if err == nil {
				i = ifi.Index
			}
			return err
		})
		return i, err
	}
	if t.GenIndex, err = index(t.Gen, GenIf); err != nil {
		return nil, err
	}
	if t.DutIndex, err = index(t.Dut, DutIf); err != nil {
		return nil, err
	}
	return t, nil
}

// Close deletes both namespaces, and with them the veth pair.
func (t *Topology) Close() error {
	var errs []error
	for _, ns := range []string{t.Gen, t.Dut} {
		if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
			errs = append(errs, run("ip", "netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// RemoveStale deletes the namespaces of earlier runs whose process is gone.
func RemoveStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		rest, ok := strings.CutPrefix(name, NamespacePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && syscall.Kill(pid, 0) != nil {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}
