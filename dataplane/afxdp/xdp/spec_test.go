package xdp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

var testCfg = Config{
	GenevePort:     6081,
	VXLANPort:      4789,
	AllowedSources: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("192.0.2.7/32")},
	Queues:         4,
}

func TestSpecRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no geneve port", func(c *Config) { c.GenevePort = 0 }, "GENEVE port is 0"},
		{"no vxlan port", func(c *Config) { c.VXLANPort = 0 }, "VXLAN port is 0"},
		{"shared port", func(c *Config) { c.VXLANPort = c.GenevePort }, "share port 6081"},
		{"no queues", func(c *Config) { c.Queues = 0 }, "0 queues"},
		{"negative queues", func(c *Config) { c.Queues = -1 }, "-1 queues"},
		{"too many queues", func(c *Config) { c.Queues = maxQueues + 1 }, "4097 queues"},
		{"ipv6 source", func(c *Config) {
			c.AllowedSources = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}
		}, "2001:db8::/32 is not an IPv4 prefix"},
		{"mapped source", func(c *Config) {
			c.AllowedSources = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}
		}, "is not an IPv4 prefix"},
		{"zero prefix", func(c *Config) { c.AllowedSources = []netip.Prefix{{}} }, "is not an IPv4 prefix"},
		{"too many sources", func(c *Config) {
			c.AllowedSources = make([]netip.Prefix, maxAllowed+1)
		}, "at most 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg
			tc.edit(&cfg)
			spec, err := Spec(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Spec: %v (spec %v), want error containing %q", err, spec != nil, tc.want)
			}
		})
	}
}

func TestSpecMaps(t *testing.T) {
	spec, err := Spec(testCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                string
		typ                 ebpf.MapType
		key, value, entries uint32
		flags               uint32
	}{
		{MapXSKs, ebpf.XSKMap, 4, 4, 4, 0},
		{MapAllowed, ebpf.LPMTrie, 8, 1, maxAllowed, unix.BPF_F_NO_PREALLOC},
		{MapAllowedOn, ebpf.Array, 4, 4, 1, 0},
		{MapCounters, ebpf.PerCPUArray, 4, 8, uint32(numCounters), 0},
	} {
		m := spec.Maps[tc.name]
		if m == nil {
			t.Errorf("map %q missing", tc.name)
			continue
		}
		if m.Name != tc.name || m.Type != tc.typ || m.KeySize != tc.key || m.ValueSize != tc.value ||
			m.MaxEntries != tc.entries || m.Flags != tc.flags {
			t.Errorf("map %q = %s %s key %d value %d entries %d flags %#x, want %s %s %d %d %d %#x",
				tc.name, m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags,
				tc.name, tc.typ, tc.key, tc.value, tc.entries, tc.flags)
		}
	}
	if len(spec.Maps) != 4 {
		t.Errorf("%d maps, want 4", len(spec.Maps))
	}
	allowed := spec.Maps[MapAllowed].Contents
	want := []lpmKey{{24, [4]byte{10, 0, 1, 0}}, {32, [4]byte{192, 0, 2, 7}}}
	if len(allowed) != len(want) {
		t.Fatalf("allowed contents %v, want keys %v", allowed, want)
	}
	for i, kv := range allowed {
		if kv.Key != want[i] || kv.Value != uint8(1) {
			t.Errorf("allowed[%d] = %v -> %v, want %v -> 1", i, kv.Key, kv.Value, want[i])
		}
	}
	if on := spec.Maps[MapAllowedOn].Contents; len(on) != 1 || on[0].Value != uint32(1) {
		t.Errorf("allowed_on contents %v, want one entry of 1", on)
	}
}

func TestSpecAllowListOffWhenEmpty(t *testing.T) {
	cfg := testCfg
	cfg.AllowedSources = nil
	spec, err := Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if on := spec.Maps[MapAllowedOn].Contents; len(on) != 1 || on[0].Value != uint32(0) {
		t.Errorf("allowed_on contents %v, want one entry of 0", on)
	}
	if n := len(spec.Maps[MapAllowed].Contents); n != 0 {
		t.Errorf("allowed has %d entries, want 0", n)
	}
}

func TestSpecMasksPrefixes(t *testing.T) {
	cfg := testCfg
	cfg.AllowedSources = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}
	spec, err := Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := spec.Maps[MapAllowed].Contents[0].Key
	if want := (lpmKey{16, [4]byte{10, 1, 0, 0}}); got != want {
		t.Errorf("key %v, want %v (host bits cleared)", got, want)
	}
}

func TestSpecProgram(t *testing.T) {
	spec, err := Spec(testCfg)
	if err != nil {
		t.Fatal(err)
	}
	p := spec.Programs[ProgramName]
	if p == nil || len(spec.Programs) != 1 {
		t.Fatalf("programs %v, want only %q", spec.Programs, ProgramName)
	}
	if p.Type != ebpf.XDP || p.License != "Dual MIT/GPL" || p.Name != ProgramName {
		t.Errorf("program %s type %s licence %q, want %s XDP Dual MIT/GPL", p.Name, p.Type, p.License, ProgramName)
	}
	// Every map the instructions reference must be in the spec, and the
	// ports must be compiled in.
	refs := map[string]bool{}
	ports := map[int64]bool{}
	for _, ins := range p.Instructions {
		if ins.IsLoadFromMap() {
			refs[ins.Reference()] = true
		}
		if ins.OpCode.JumpOp() == asm.JEq {
			ports[ins.Constant] = true
		}
	}
	for _, name := range []string{MapXSKs, MapAllowed, MapAllowedOn, MapCounters} {
		if !refs[name] {
			t.Errorf("program does not reference map %q", name)
		}
	}
	for name := range refs {
		if spec.Maps[name] == nil {
			t.Errorf("program references map %q, not in the spec", name)
		}
	}
	if !ports[6081] || !ports[4789] {
		t.Errorf("port comparisons %v lack 6081 or 4789", ports)
	}
	// Every jump must land on a label that exists.
	symbols, err := p.Instructions.SymbolOffsets()
	if err != nil {
		t.Fatal(err)
	}
	for ref := range p.Instructions.ReferenceOffsets() {
		if _, ok := symbols[ref]; !ok && spec.Maps[ref] == nil {
			t.Errorf("reference %q is neither a label nor a map", ref)
		}
	}
	if last := p.Instructions[len(p.Instructions)-1]; last.OpCode.JumpOp() != asm.Exit {
		t.Errorf("last instruction %v, want exit", last)
	}
}
