package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad flags are refused before anything needs root.
func TestRunRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-targets", "xdptx,nosuch"},
		{"-rates", "100,x"},
		{"-rates", "-5"},
		{"-gen", "pktgen"},
		{"-live-batch", "0"},
		{"-live-batch", "257"},
		{"extra"},
		{"-no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %s", args, code, errOut.String())
		}
		if out.Len() != 0 || errOut.Len() == 0 {
			t.Errorf("%q: stdout %q, stderr %q", args, out.String(), errOut.String())
		}
	}
	var errOut bytes.Buffer
	run([]string{"-targets", "nosuch"}, &bytes.Buffer{}, &errOut)
	if !strings.Contains(errOut.String(), "xdptx, afxdp, socket") {
		t.Errorf("the refusal does not list the targets: %s", errOut.String())
	}
	errOut.Reset()
	run([]string{"-gen", "nosuch"}, &bytes.Buffer{}, &errOut)
	if !strings.Contains(errOut.String(), "live, xsk") {
		t.Errorf("the refusal does not list the generators: %s", errOut.String())
	}
}
