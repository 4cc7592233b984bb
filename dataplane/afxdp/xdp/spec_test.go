package xdp

import (
	"encoding/binary"
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
		{"negative max frame", func(c *Config) { c.MaxFrame = -1 }, "max frame -1"},
		{"max frame too large", func(c *Config) { c.MaxFrame = maxFrameLimit + 1 }, "max frame 16777217"},
		{"negative fast flows", func(c *Config) { c.FastPath, c.FastFlows = true, -1 }, "-1 fast flows"},
		{"too many fast flows", func(c *Config) { c.FastPath, c.FastFlows = true, maxFastFlows+1 }, "16777217 fast flows"},
		{"mapped geneve destination", func(c *Config) {
			c.GeneveDst = netip.MustParseAddr("::ffff:10.0.0.1")
		}, "GENEVE destination ::ffff:10.0.0.1 is IPv4-mapped"},
		{"zoned vxlan destination", func(c *Config) {
			c.VXLANDst = netip.MustParseAddr("fe80::1%eth0")
		}, "VXLAN destination fe80::1%eth0 has a zone"},
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
		if op := ins.OpCode.JumpOp(); op == asm.JEq || op == asm.JNE {
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

func TestSpecAcceptsLimits(t *testing.T) {
	for _, edit := range []func(*Config){
		func(c *Config) { c.MaxFrame = maxFrameLimit },
		func(c *Config) { c.MaxFrame = 1 },
		func(c *Config) { c.GeneveDst, c.VXLANDst = netip.IPv4Unspecified(), netip.IPv6Unspecified() },
		func(c *Config) {
			c.GeneveDst, c.VXLANDst = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
		},
	} {
		cfg := testCfg
		edit(&cfg)
		if _, err := Spec(cfg); err != nil {
			t.Errorf("Spec(%+v): %v", cfg, err)
		}
	}
}

// specInsns returns the program Spec builds for cfg.
func specInsns(t *testing.T, cfg Config) *ebpf.ProgramSpec {
	t.Helper()
	spec, err := Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return spec.Programs[ProgramName]
}

// TestSpecFrags: the frags flag and the buffer-length helper go together,
// and the helper is called only when there is a limit to measure against.
func TestSpecFrags(t *testing.T) {
	for _, tc := range []struct {
		frags    bool
		maxFrame int
		flags    uint32
		helper   bool
	}{
		{false, 0, 0, false},
		{false, 3840, 0, false},
		{true, 0, unix.BPF_F_XDP_HAS_FRAGS, false},
		{true, 3840, unix.BPF_F_XDP_HAS_FRAGS, true},
	} {
		cfg := testCfg
		cfg.Frags, cfg.MaxFrame = tc.frags, tc.maxFrame
		p := specInsns(t, cfg)
		helper, limit := false, false
		for _, ins := range p.Instructions {
			if ins.IsBuiltinCall() && asm.BuiltinFunc(ins.Constant) == asm.FnXdpGetBuffLen {
				helper = true
			}
			if ins.OpCode.JumpOp() == asm.JGT && ins.Constant == int64(tc.maxFrame) ||
				ins.OpCode.ALUOp() == asm.Add && ins.Constant == int64(tc.maxFrame) {
				limit = true
			}
		}
		if p.Flags != tc.flags || helper != tc.helper {
			t.Errorf("frags %v max %d: flags %#x, get_buff_len called %v; want %#x, %v",
				tc.frags, tc.maxFrame, p.Flags, helper, tc.flags, tc.helper)
		}
		if tc.maxFrame > 0 && !limit {
			t.Errorf("frags %v: the limit %d is not compiled in", tc.frags, tc.maxFrame)
		}
	}
}

// TestSpecDestinations: a destination filter compiles the address in, as
// words in the order a packet load yields them; none compiles no check.
func TestSpecDestinations(t *testing.T) {
	constants := func(cfg Config) map[int64]bool {
		m := map[int64]bool{}
		for _, ins := range specInsns(t, cfg).Instructions {
			if ins.OpCode.IsDWordLoad() {
				m[ins.Constant] = true
			}
		}
		return m
	}
	word := func(b ...byte) int64 { return int64(binary.NativeEndian.Uint32(b)) }
	open := constants(testCfg)
	cfg := testCfg
	cfg.GeneveDst = netip.MustParseAddr("10.1.2.3")
	cfg.VXLANDst = netip.MustParseAddr("2001:db8:0:1::7")
	got := constants(cfg)
	for _, w := range []int64{
		word(10, 1, 2, 3),
		word(0x20, 0x01, 0x0d, 0xb8), word(0, 0, 0, 1), word(0, 0, 0, 0), word(0, 0, 0, 7),
	} {
		if !got[w] {
			t.Errorf("constant %#x missing from the filtered program", w)
		}
		if open[w] && w != 0 {
			t.Errorf("constant %#x in the unfiltered program", w)
		}
	}
	for _, unspecified := range []netip.Addr{{}, netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		c := testCfg
		c.GeneveDst, c.VXLANDst = unspecified, unspecified
		if a, b := len(specInsns(t, c).Instructions), len(specInsns(t, testCfg).Instructions); a != b {
			t.Errorf("destination %v: %d instructions, want the unfiltered %d", unspecified, a, b)
		}
	}
}

// TestSpecFastPath: FastPath adds its two maps, sized by FastFlows (default
// DefaultFastFlows), the program references them and answers with XDP_TX;
// without it neither the maps nor the action are there.
func TestSpecFastPath(t *testing.T) {
	if CounterFastPath != 7 || CounterFastPathBytes != 8 || numCounters != 9 {
		t.Errorf("CounterFastPath %d, CounterFastPathBytes %d of %d: the existing counters' indices must not move",
			CounterFastPath, CounterFastPathBytes, numCounters)
	}
	usesTX := func(p *ebpf.ProgramSpec) bool {
		for _, ins := range p.Instructions {
			if ins.OpCode.ALUOp() == asm.Mov && ins.Dst == regCtx && ins.Constant == actionTX {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		flows, want int
	}{{0, DefaultFastFlows}, {16, 16}, {maxFastFlows, maxFastFlows}} {
		cfg := testCfg
		cfg.FastPath, cfg.FastFlows = true, tc.flows
		spec, err := Spec(cfg)
		if err != nil {
			t.Fatal(err)
		}
		flows, on := spec.Maps[MapFastFlows], spec.Maps[MapFastOn]
		if flows == nil || flows.Type != ebpf.LRUHash || flows.KeySize != fastKeySize || flows.ValueSize != 24 ||
			flows.MaxEntries != uint32(tc.want) || flows.Name != MapFastFlows {
			t.Errorf("FastFlows %d: fast_flows %+v, want LRU hash 48 -> 24 bytes, %d entries", tc.flows, flows, tc.want)
		}
		if on == nil || on.Type != ebpf.Array || on.KeySize != 4 || on.ValueSize != 4 || on.MaxEntries != 1 || len(on.Contents) != 0 {
			t.Errorf("fast_on %+v, want ARRAY[1] of u32 starting at 0", on)
		}
		if len(spec.Maps) != 6 {
			t.Errorf("%d maps, want 6", len(spec.Maps))
		}
		p := spec.Programs[ProgramName]
		refs := map[string]bool{}
		for _, ins := range p.Instructions {
			if ins.IsLoadFromMap() {
				refs[ins.Reference()] = true
			}
		}
		if !refs[MapFastFlows] || !refs[MapFastOn] || !usesTX(p) {
			t.Errorf("program references %v, XDP_TX %v; want both fast maps and XDP_TX", refs, usesTX(p))
		}
	}
	plain, err := Spec(testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Maps[MapFastFlows] != nil || plain.Maps[MapFastOn] != nil || usesTX(plain.Programs[ProgramName]) {
		t.Error("a program without FastPath has fast-path maps or XDP_TX")
	}
}
