// Package echo cuts the values an error message repeats from its input: enough to
// recognise them, never so much that a 50 MB value buries the message and the log
// it goes to.
package echo

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Max is how many bytes of a value a message repeats.
const Max = 64

// Clip returns s, or its first max bytes (whole UTF-8 characters) followed by "…"
// and the length of s.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:cutAt(s, max)] + fmt.Sprintf("… (%d bytes)", len(s))
}

// Quote is strconv.Quote of s, cut like Clip to Max bytes: use it for every value of
// a file that an error message repeats.
func Quote(s string) string {
	if len(s) <= Max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:cutAt(s, Max)]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// cutAt returns where to cut s to at most max bytes without splitting a character.
func cutAt(s string, max int) int {
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}
