package config

import (
	"os"
	"strings"
	"testing"
)

// longConfig is a realistic file; cases below break one of its lines.
const longConfig = `# weir
gwlb:
  listen: 0.0.0.0:6081
  allowed_sources: [10.0.0.0/24]
  reply: auto
dataplane:
  workers: 2
  batch: 64
health:
  listen: 0.0.0.0:8080
  drain_delay: 5s
policy:
  default: allow
  rules:
    - {action: drop, proto: tcp, dst_port: 23}
    - action: allow
      proto: udp
log:
  level: info
`

// TestYAMLSyntaxErrorLines: a syntax error is reported at the line at fault, with
// a message that says what is wrong.
func TestYAMLSyntaxErrorLines(t *testing.T) {
	replace := func(line int, text string) string {
		l := strings.Split(longConfig, "\n")
		l[line-1] = text
		return strings.Join(l, "\n")
	}
	for _, tc := range []struct {
		name, data string
		line       int
		msg        string
	}{
		{"over-indented key", replace(17, "        proto: udp"), 17, `"proto" is indented deeper than line 16`},
		{"over-indented key in a mapping", replace(11, "    drain_delay: 5s"), 11, `"drain_delay" is indented deeper than line 10`},
		{"over-indented key deep down", "a:\n  b:\n    c: 1\n      d: 2\n", 4, `"d" is indented deeper than line 3`},
		{"under-indented key", "a:\n  b:\n    c: 1\n   d: 2\n", 4, "indented by 3 spaces, which matches no enclosing level (the lines above are indented by 0, 2 or 4)"},
		{"under-indented key near the top", "a:\n  b: 1\n c: 2\n", 3, "indented by 1 space"},
		{"sequence item out of line", "mirror:\n  sessions:\n    - vni: 1\n      name: x\n   - vni: 2\n", 5, "indented by 3 spaces"},
		{"tab at the start", "log:\n\tlevel: info\n", 2, "tab in indentation: YAML indents with spaces"},
		{"tab after a good line", "log:\n  level: info\n\tformat: json\n", 3, "tab in indentation"},
		{"tab after spaces", replace(19, "  \tlevel: info"), 19, "tab in indentation"},
		{"unclosed [", "a: 1\nb: [1, 2\nc: 3\nd: 4\n", 2, "unclosed [: no ] closes it"},
		{"unclosed [ in a long file", replace(4, "  allowed_sources: [10.0.0.0/24"), 4, "unclosed ["},
		{"unclosed {", replace(15, "    - {action: drop, proto: tcp, dst_port: 23"), 15, "unclosed {: no } closes it"},
		{"unclosed quote", "a: 1\nb: \"abc\nc: 3\n", 2, `unclosed ": the string never ends`},
		{"mapping value after a value", "x: 1\n  y: 2\n", 2, `"y" is indented deeper than line 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("weir.yaml", []byte(tc.data))
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Parse = %v, want a syntax *Error", err)
			}
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("Parse = %v, want line %d and %q", err, tc.line, tc.msg)
			}
		})
	}
}

// TestYAMLSyntaxScannerQuiet: the scanner finds nothing in valid files of every
// shape weir's configurations take, so it never moves a yaml.v3 error elsewhere.
func TestYAMLSyntaxScannerQuiet(t *testing.T) {
	for _, data := range []string{
		longConfig,
		readTestdata(t, "testdata/full.yaml"),
		"a: |\n  text\n  \tindented: with a tab\n  more: text\nb: 1\n",
		"a: >\n    folded\n      deeper\nb: 1\n",
		"a: a plain scalar\n  carried on\nb: 1\n",
		"a:\n- 1\n- 2\nb:\n  - {x: 1,\n     y: 2}\n  - [1,\n     2]\n",
		"a: \"multi\n  line\" # c\nb: 'it''s'\n",
		"- - 1\n  - 2\n- 3\n",
		"x: 1 # comment: with colon\ny: 2\n",
		"log: &l\n  level: info\nother: !!map\n  a: 1\n",
	} {
		if line, msg, ok := syntaxProblem([]byte(data), "found character that cannot start any token"); ok && !strings.Contains(data, "\t") {
			t.Errorf("syntaxProblem(%q) = line %d %q, want nothing", data, line, msg)
		}
		if line, msg, ok := syntaxProblem([]byte(data), "did not find expected key"); ok {
			t.Errorf("syntaxProblem(%q) = line %d %q, want nothing", data, line, msg)
		}
	}
}

func readTestdata(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzSyntaxProblem: the scanner never panics, and a line it names is in the file.
func FuzzSyntaxProblem(f *testing.F) {
	f.Add([]byte(longConfig))
	f.Add([]byte("a:\n  b: [1, {c: \"d\n  - e: |\n\t x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if line, _, ok := syntaxProblem(data, "did not find expected key; tab character"); ok {
			if line < 1 || line > strings.Count(string(data), "\n")+1 {
				t.Errorf("line %d of a %d-line file", line, strings.Count(string(data), "\n")+1)
			}
		}
	})
}
