package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	gwlbsim "weir/sim/gwlb"
)

func TestSimGWLBFailoverFlags(t *testing.T) {
	code, out, _ := runWeir(t, "sim", "gwlb", "-h")
	for _, want := range []string{"-failover MODE", "no_rebalance (AWS's default", `(default "no_rebalance")`,
		"-health-interval", "-healthy-threshold", "-unhealthy-threshold", "-health-timeout",
		"moved_flows_lost", "lost_after_move", "wrong_target", "sent_to_unhealthy"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("sim gwlb -h = %d, does not mention %q", code, want)
		}
	}
	for _, args := range [][]string{
		{"-failover", "sometimes"},
		{"-health-interval", "0s"},
		{"-unhealthy-threshold", "0"},
	} {
		args = append([]string{"sim", "gwlb", "-target", "127.0.0.1:6081"}, args...)
		if code, _, errs := runWeir(t, args...); code != 2 || !strings.Contains(errs, args[4]) {
			t.Errorf("%q = %d, stderr %q; want 2 and the flag named", args, code, errs)
		}
	}
}

// TestSimGWLBLongFlows: long-lived flows (many packets each at a modest rate) stay on
// their target to the end, with -failover rebalance and a health URL-less target.
func TestSimGWLBLongFlows(t *testing.T) {
	gw := netip.MustParseAddr("127.0.0.2")
	l, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 0)))
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	l.Close()
	// The target returns each datagram from its address and the source port P it came
	// from, to the GWLB's port, as weir does.
	tc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	replies := map[uint16]*net.UDPConn{}
	defer func() {
		tc.Close()
		<-done
		for _, c := range replies {
			c.Close()
		}
	}()
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := tc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			rc := replies[from.Port()]
			if rc == nil {
				if rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), from.Port()))); err != nil {
					t.Errorf("reply socket: %v", err)
					return
				}
				replies[from.Port()] = rc
			}
			rc.WriteToUDPAddrPort(buf[:n], netip.AddrPortFrom(from.Addr(), port))
		}
	}()
	target := tc.LocalAddr().String()
	code, out, errs := runWeir(t, "sim", "gwlb", "-local", gw.String(), "-port", strconv.Itoa(int(port)),
		"-target", target, "-flows", "10", "-packets", "200", "-rate", "2000", "-failover", "rebalance", "-per-flow")
	if code != 0 {
		t.Fatalf("sim gwlb = %d, stderr %q", code, errs)
	}
	var rep gwlbsim.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Failover != gwlbsim.Rebalance || rep.Sent != 2000 || rep.Returned != 2000 || rep.Rehashed != 0 || len(rep.Flows) != 10 {
		t.Fatalf("report %+v", rep)
	}
	for _, f := range rep.Flows {
		if f.Sent != 200 || f.Returned != 200 || f.Moved || f.FirstTarget != target || f.Target != target {
			t.Errorf("flow %+v", f)
		}
	}
	// 2000 packets at 2000 a second, round-robin over 10 flows: each flow lasts the run.
	if rep.ElapsedS < 0.9 {
		t.Errorf("run took %.3f s", rep.ElapsedS)
	}
}
