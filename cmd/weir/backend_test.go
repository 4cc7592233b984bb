package main

import (
	"bufio"
	"strings"
	"testing"
)

// TestDefaultRouteInterface reads /proc/net/route as the kernel writes it: the
// default route with the lowest metric wins; routes that are down, or not a
// default (a destination or a mask), do not count.
func TestDefaultRouteInterface(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, tc := range []struct {
		name, table, want string
	}{
		{"one default", header + "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", "eth0"},
		{"lowest metric", header + "eth1\t00000000\t0101000A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
			"ens5\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "ens5"},
		{"down route ignored", header + "eth1\t00000000\t0101000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", ""},
		{"no default", header + "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", ""},
		{"header only", header, ""},
		{"garbage", header + "eth0 zz\n\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := defaultRouteInterface(bufio.NewScanner(strings.NewReader(tc.table))); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCheckConfigInterface: check-config finds a missing afxdp interface and
// points at its line; an interface that exists, or another backend, passes.
func TestCheckConfigInterface(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"missing", "dataplane:\n  backend: afxdp\n  interface: weir-nonesuch\n", ":3: dataplane.interface: weir-nonesuch: "},
		{"lo", "dataplane:\n  backend: afxdp\n  interface: lo\n", ""},
		{"socket ignores it", "dataplane:\n  backend: socket\n  interface: weir-nonesuch\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "weir.yaml", tc.data)
			var out, errOut strings.Builder
			err := cmdCheckConfig([]string{path}, &out, &errOut)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("check-config: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), path+tc.want) {
				t.Fatalf("check-config: %v, want %q", err, path+tc.want)
			}
		})
	}
}
