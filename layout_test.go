package weir_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "weir"

// layoutRules say which weir packages a package may not import, so that the folders
// keep showing a packet's path: leaf codecs stand alone, the dataplane never reaches
// up into the commands, health or the cluster, and the config model needs no backend.
var layoutRules = []struct {
	pkg    string   // the package and those below it
	banned []string // import paths (and those below them) it must not import
	why    string
}{
	{"weir/geneve", []string{"weir"}, "geneve is a leaf codec: it imports nothing of weir's"},
	{"weir/vxlan", []string{"weir"}, "vxlan is a leaf codec: it imports nothing of weir's"},
	{"weir/dataplane", []string{"weir/cmd", "weir/health", "weir/cluster", "weir/sim"},
		"the dataplane is wired by cmd; it does not reach up into it, health, the cluster or the simulators"},
	{"weir/config", []string{"weir/cmd", "weir/health", "weir/cluster", "weir/dataplane/socket",
		"weir/dataplane/pcapin", "weir/dataplane/afxdp", "weir/dataplane/engine"},
		"the config model imports no backend and nothing that runs"},
	{"weir/health", []string{"weir/cmd", "weir/dataplane", "weir/cluster"}, "health only reports what it is told"},
	{"weir/sim", []string{"weir/cmd", "weir/dataplane/engine", "weir/health", "weir/cluster"},
		"the simulators stand in for AWS: they share nothing with the appliance but the codecs"},
	{"weir/cloud", []string{"weir/cmd", "weir/dataplane", "weir/health", "weir/cluster", "weir/sim"},
		"the cloud APIs hand plain values (seeds, a terminate signal, configuration) to cmd, which wires them"},
	{"weir", []string{"weir/cmd"}, "nothing imports a command"},
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// violations lists each import of imports (package -> its imports, from its
// non-test files) that a rule forbids. A package importing itself, as an in-package test may not but an
// external one does, is never a violation.
func violations(imports map[string][]string) []string {
	var out []string
	for pkg, imps := range imports {
		for _, r := range layoutRules {
			if !under(pkg, r.pkg) {
				continue
			}
			for _, imp := range imps {
				if imp == pkg || under(imp, r.pkg) && r.banned[0] == module { // a leaf may use its own sub-packages
					continue
				}
				for _, b := range r.banned {
					if under(imp, b) {
						out = append(out, pkg+" imports "+imp+": "+r.why)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// moduleImports reads the weir imports of every package in the tree, from the
// files' import clauses alone.
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	imports := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil // tests are not part of what a package pulls in: they may use anything
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := module
		if dir := filepath.ToSlash(filepath.Dir(path)); dir != "." {
			pkg += "/" + dir
		}
		for _, is := range f.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if under(p, module) {
				imports[pkg] = append(imports[pkg], p)
			}
		}
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return imports
}

func TestLayout(t *testing.T) {
	imports := moduleImports(t)
	for _, want := range []string{"weir/geneve", "weir/vxlan", "weir/dataplane", "weir/config", "weir/cmd/weir"} {
		if _, ok := imports[want]; !ok {
			t.Fatalf("package %s not found: the walk is broken", want)
		}
	}
	for _, v := range violations(imports) {
		t.Error(v)
	}
}

// TestLayoutRulesBite checks the checker on imports that break each kind of rule.
func TestLayoutRulesBite(t *testing.T) {
	bad := map[string][]string{
		"weir/geneve":              {"weir/dataplane/packet"},
		"weir/vxlan":               {"weir/sim/synth"},
		"weir/dataplane/flow":      {"weir/cluster"},
		"weir/dataplane":           {"weir/health", "weir/dataplane/flow"},
		"weir/config":              {"weir/dataplane/socket", "weir/dataplane/policy"},
		"weir/sim/gwlb":            {"weir/geneve", "weir/dataplane/engine"},
		"weir/dataplane/mirror":    {"weir/dataplane/packet"},
		"weir/dataplane/socket":    {"weir/dataplane"},
		"weir/cmd/weir":            {"weir/health", "weir/dataplane/engine"},
		"weir/dataplane/engine":    {"weir/cmd/weir"},
		"weir/geneve/internal/xyz": {"weir/geneve"},
	}
	got := violations(bad)
	for _, want := range []string{
		"weir/geneve imports weir/dataplane/packet",
		"weir/vxlan imports weir/sim/synth",
		"weir/dataplane/flow imports weir/cluster",
		"weir/dataplane imports weir/health",
		"weir/config imports weir/dataplane/socket",
		"weir/sim/gwlb imports weir/dataplane/engine",
		"weir/dataplane/engine imports weir/cmd/weir",
	} {
		if !slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, want+":") }) {
			t.Errorf("no violation reported for %s; got %q", want, got)
		}
	}
	if n := 8; len(got) != n { // the seven above, plus engine -> cmd also breaks "nothing imports a command"
		t.Errorf("%d violations, want %d: %q", len(got), n, got)
	}
}
