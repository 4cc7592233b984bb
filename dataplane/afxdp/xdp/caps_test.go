package xdp

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// envNoPerfmon marks the re-executed test binary that runs without
// CAP_PERFMON and CAP_SYS_ADMIN.
const envNoPerfmon = "WEIR_XDP_TEST_NO_PERFMON"

// Capability bits (linux/capability.h).
const (
	capSysAdmin = 21
	capBPF      = 39
	capPerfmon  = 38
)

// TestLoadsWithoutPerfmon loads every program shape in a copy of the test
// binary that setpriv stripped of CAP_PERFMON and CAP_SYS_ADMIN, as weir
// runs with CAP_BPF and CAP_NET_ADMIN: as root the verifier allows pointer
// arithmetic it refuses then. A control program that adds a variable to a
// packet pointer must be refused there, or the check proves nothing.
func TestLoadsWithoutPerfmon(t *testing.T) {
	if os.Getenv(envNoPerfmon) != "" {
		loadWithoutPerfmon(t)
		return
	}
	load(t, testCfg) // skips (or fails under CI) where nothing can load
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set, so not skipping: no setpriv")
		}
		t.Skip("no setpriv to drop capabilities with")
	}
	cmd := exec.Command(setpriv, "--inh-caps=-perfmon,-sys_admin", "--bounding-set=-perfmon,-sys_admin",
		os.Args[0], "-test.run=^TestLoadsWithoutPerfmon$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envNoPerfmon+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLoadsWithoutPerfmon") {
		t.Fatalf("without CAP_PERFMON: %v\n%s", err, out)
	}
	t.Logf("without CAP_PERFMON:\n%s", out)
}

func loadWithoutPerfmon(t *testing.T) {
	caps := effectiveCaps(t)
	if caps&(1<<capPerfmon) != 0 || caps&(1<<capSysAdmin) != 0 || caps&(1<<capBPF) == 0 {
		t.Fatalf("effective capabilities %#x: want CAP_BPF without CAP_PERFMON and CAP_SYS_ADMIN", caps)
	}
	control := &ebpf.ProgramSpec{Type: ebpf.XDP, License: licenseString, Instructions: asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 1),
		asm.JGT.Reg(asm.R4, asm.R3, "out"),
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Byte),
		asm.And.Imm(asm.R5, 0x0f),
		asm.Add.Reg(asm.R2, asm.R5), // a variable offset
		asm.Mov.Imm(asm.R0, actionPass).WithSymbol("out"),
		asm.Return(),
	}}
	if p, err := ebpf.NewProgram(control); err == nil {
		p.Close()
		t.Fatal("a variable offset on a packet pointer loaded: this process does not test what it should")
	}
	for _, cfg := range []Config{
		testCfg,
		{GenevePort: 6081, VXLANPort: 4789, Queues: 2, FastPath: true, AllowedSources: testCfg.AllowedSources},
		{GenevePort: 6081, Queues: 2, FastPath: true, MaxFrame: 3840, Frags: true,
			GeneveDst: testCfg.AllowedSources[0].Addr()},
		{GenevePort: 6081, VXLANPort: 4789, Queues: 2, FastPath: true, MaxFrame: 1500},
	} {
		spec, err := Spec(cfg)
		if err != nil {
			t.Fatal(err)
		}
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			t.Fatalf("fast path %v frags %v without CAP_PERFMON: %+v", cfg.FastPath, cfg.Frags, err)
		}
		coll.Close()
	}
}

// effectiveCaps reads CapEff from /proc/self/status.
func effectiveCaps(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return 0
}
