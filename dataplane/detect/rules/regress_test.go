package rules

import (
	"errors"
	"strings"
	"testing"
)

// Suricata's loader (DetectLoadSigFile) drops a comment line before it looks for a
// trailing \, and strips trailing white space before looking for it.
func TestContinuation(t *testing.T) {
	tests := []struct {
		name string
		text string
		sids []uint32
	}{
		{"comment ending in backslash does not swallow the next rule",
			"# disabled: alert tcp any any -> any any (sid:1;) \\\n" +
				"alert tcp any any -> any any (sid:2;)\n", []uint32{2}},
		{"white space after the continuation backslash",
			"alert tcp any any -> any any (msg:\"x\"; \\  \n" +
				"sid:3;)\n", []uint32{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse(strings.NewReader(tt.text), "t.rules", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []uint32
			for _, r := range set.Rules {
				got = append(got, r.SID)
			}
			if len(got) != len(tt.sids) || (len(got) > 0 && got[0] != tt.sids[0]) {
				t.Fatalf("sids %v, want %v", got, tt.sids)
			}
		})
	}
}

// A pcre weir keeps must match exactly the byte strings PCRE (non-UTF, as
// Suricata compiles it) matches; otherwise it must be skipped.
func TestPCREMeaning(t *testing.T) {
	tests := []struct {
		name  string
		pcre  string
		input string
		want  bool // PCRE's answer
	}{
		{"inline (?m) keeps $ multi-line", `/(?m)^foo$/`, "foo\nbar", true},
		{"dot is one byte, not one UTF-8 rune", `/a.b/`, "a\xc3\xa9b", false},
		{"negated class is one byte", `/^[^\x00-\x7f]{2}$/`, "\xc3\xa9", true},
		{"\\D is one byte", `/^x\Dy$/`, "x\xc3\xa9y", false},
		{"i folds ASCII only (KELVIN SIGN is not k)", `/^k$/i`, "\xe2\x84\xaa", false},
		{"{,n} is {0,n} in PCRE2 >= 10.43", `/^ab{,3}c$/`, "abbc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(hdr(`pcre:"`+tt.pcre+`"; sid:1;`), nil)
			var skip *SkipError
			if errors.As(err, &skip) {
				return // refusing is fine
			}
			if err != nil {
				t.Fatal(err)
			}
			re := r.Matches[0].Regexp
			if got := re.Match(PCREInput(nil, []byte(tt.input))); got != tt.want { // as the engine runs it
				t.Fatalf("%s -> %q matches %q: %v, PCRE: %v", tt.pcre, re, tt.input, got, tt.want)
			}
		})
	}
}

// Suricata 8 threshold syntax weir does not run must be skipped, not fail the file.
func TestThresholdBackoff(t *testing.T) {
	_, err := ParseRule(hdr(`threshold: type backoff, track by_flow, count 1, multiplier 10; sid:1;`), nil)
	var skip *SkipError
	if !errors.As(err, &skip) {
		t.Fatalf("got %v, want a *SkipError", err)
	}
}

// Suricata 8 (detect-flowbits.c) splits flowbit lists only at |; "a&b" is one
// (odd) name, never an AND of a and b.
func TestFlowbitsAmpersand(t *testing.T) {
	r, err := ParseRule(hdr(`flowbits:isset,a&b; sid:1;`), nil)
	if err != nil {
		var skip *SkipError
		if errors.As(err, &skip) {
			return
		}
		t.Fatal(err)
	}
	if fb := r.Flowbits[0]; len(fb.Names) != 1 {
		t.Fatalf("isset,a&b parsed as %d bits %q (AND); Suricata tests one bit named \"a&b\"", len(fb.Names), fb.Names)
	}
}

// Suricata looks classtypes up lowercased (SCClassConfGetClasstype).
func TestClasstypeCase(t *testing.T) {
	r, err := ParseRule(hdr(`classtype:Trojan-Activity; sid:1;`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Classtype != "trojan-activity" || r.Priority != 1 {
		t.Fatalf("classtype %q priority %d", r.Classtype, r.Priority)
	}
}

func TestPCREOffset(t *testing.T) {
	b := []byte("a\xe9b\xffc")
	in := PCREInput(nil, b)
	if string(in) != "a\u00e9b\u00ffc" {
		t.Fatalf("PCREInput = %q", in)
	}
	for convOff, want := range map[int]int{0: 0, 1: 1, 3: 2, 4: 3, 6: 4, 7: 5} {
		if got := PCREOffset(in, convOff); got != want {
			t.Errorf("PCREOffset(%d) = %d, want %d", convOff, got, want)
		}
	}
	if ascii := []byte("plain"); &PCREInput(nil, ascii)[0] != &ascii[0] {
		t.Error("ASCII input was copied")
	}
}
