package config

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// syntaxProblem re-reads a file that yaml.v3 refused, to name the line at fault
// and say what is wrong in words a reader of the file can act on. yaml.v3 often
// reports a line near the problem, or the line where the enclosing mapping starts,
// or none. It finds, first to last: a tab in the indentation; a key indented deeper
// than the line above, whose value is already given; a line whose indentation
// matches no enclosing level; a flow collection ([ or {) or a quoted string that is
// never closed. A tab is looked for only when yaml.v3's message (yamlMsg) is about
// one, as a block scalar may hold tabs. ok is false when it finds none of these (then yaml.v3's line stands).
//
// It is a line scanner, not a YAML parser: it knows block mappings and sequences,
// block scalars (| and >), multi-line plain scalars, flow collections and quotes,
// which is what configuration files hold.
func syntaxProblem(data []byte, yamlMsg string) (line int, msg string, ok bool) {
	if !slices.ContainsFunc(structural, func(m string) bool { return strings.Contains(yamlMsg, m) }) {
		return 0, "", false // an anchor, a depth limit, ...: yaml.v3's line is right
	}
	lines := strings.Split(string(data), "\n")
	if strings.Contains(yamlMsg, "tab") || strings.Contains(yamlMsg, "cannot start any token") {
		for i, l := range lines {
			ws := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			rest := strings.TrimSpace(l[len(ws):])
			if strings.Contains(ws, "\t") && rest != "" && !strings.HasPrefix(rest, "#") {
				return i + 1, "tab in indentation: YAML indents with spaces", true
			}
		}
	}

	var (
		levels     []int // indentation of the open block collections
		levelLines []int // the line each level starts at
		opens      bool  // the last content line opens a nested block
		lastKey    int   // the last content line, for messages
		scalarOver = -1  // > -1: inside a block scalar, whose lines are indented deeper than this
	)
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \r")
		text := strings.TrimLeft(l, " ")
		indent := len(l) - len(text)
		if scalarOver >= 0 {
			if text == "" || indent > scalarOver {
				continue
			}
			scalarOver = -1
		}
		if text == "" || text[0] == '#' || strings.HasPrefix(text, "---") || strings.HasPrefix(text, "...") {
			continue
		}
		switch {
		case len(levels) == 0:
			levels, levelLines = append(levels, indent), append(levelLines, i+1)
		case indent > levels[len(levels)-1]:
			if opens {
				levels, levelLines = append(levels, indent), append(levelLines, i+1)
			} else if key, isKey := keyOf(text); isKey {
				return i + 1, fmt.Sprintf("indentation: %s is indented deeper than line %d, whose value is already given "+
					"(indent it as the keys beside it, or remove the value above)", strconv.Quote(key), lastKey), true
			} else {
				continue // a plain scalar carried on to the next line
			}
		case indent < levels[len(levels)-1]:
			before := append([]int(nil), levels...)
			for len(levels) > 0 && levels[len(levels)-1] > indent {
				levels, levelLines = levels[:len(levels)-1], levelLines[:len(levelLines)-1]
			}
			if len(levels) == 0 || levels[len(levels)-1] != indent {
				return i + 1, fmt.Sprintf("indentation: this line is indented by %d space%s, which matches no enclosing "+
					"level (the lines above are indented by %s)", indent, plural(indent), levelsText(before)), true
			}
		}
		lastKey = i + 1

		// What the line holds after any "- " of a sequence item.
		content, col := text, indent
		for strings.HasPrefix(content, "- ") || content == "-" {
			if content == "-" {
				content = ""
				break
			}
			trimmed := strings.TrimLeft(content[1:], " ")
			col += len(content) - len(trimmed)
			content = trimmed
			if _, isKey := keyOf(content); isKey || strings.HasPrefix(content, "- ") {
				// The item is a mapping (or a sequence) starting at this column.
				levels, levelLines = append(levels, col), append(levelLines, i+1)
			}
		}
		value := content
		if _, isKey := keyOf(content); isKey {
			value = strings.TrimSpace(content[strings.Index(content, ":")+1:])
		}
		value = stripComment(value)
		opens = value == "" || onlyProperties(value)
		switch {
		case value == "":
		case value[0] == '|' || value[0] == '>':
			scalarOver = indent
		case value[0] == '[' || value[0] == '{':
			end, closed := skipFlow(lines, i, len(lines[i])-len(strings.TrimLeft(lines[i], " "))+strings.Index(text, value))
			if !closed {
				closer := map[byte]string{'[': "]", '{': "}"}[value[0]]
				return i + 1, fmt.Sprintf("unclosed %c: no %s closes it", value[0], closer), true
			}
			i = end
		case value[0] == '"' || value[0] == '\'':
			if end, closed := skipQuoted(lines, i, value); !closed {
				return i + 1, fmt.Sprintf("unclosed %c: the string never ends", value[0]), true
			} else {
				i = end
			}
		}
	}
	return 0, "", false
}

// onlyProperties reports whether v is only an anchor and/or a tag ("&defaults",
// "!!map"), which leaves the value to the lines below.
func onlyProperties(v string) bool {
	for _, f := range strings.Fields(v) {
		if f[0] != '&' && f[0] != '!' {
			return false
		}
	}
	return true
}

// structural are the yaml.v3 messages about the layout of the text, which
// syntaxProblem may explain better.
var structural = []string{"mapping values are not allowed", "did not find expected", "could not find expected",
	"cannot start any token", "tab character", "found unexpected end of stream", "block sequence entries are not allowed",
	"found unexpected ':'"}

// keyOf reports whether text starts with a mapping key ("key:" then a space or the
// end of the line) and returns the key.
func keyOf(text string) (string, bool) {
	if text == "" || strings.ContainsRune("[{\"'#|>&*!%@`", rune(text[0])) || strings.HasPrefix(text, "- ") || text == "-" {
		return "", false
	}
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case ':':
			if i+1 == len(text) || text[i+1] == ' ' {
				return text[:i], i > 0
			}
		case '#':
			if i > 0 && text[i-1] == ' ' {
				return "", false
			}
		}
	}
	return "", false
}

// stripComment removes a trailing comment from a value (not inside quotes).
func stripComment(v string) string {
	quote := byte(0)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || v[i-1] == ' '):
			return strings.TrimSpace(v[:i])
		}
	}
	return v
}

// skipFlow follows a flow collection opened at lines[start][col] to its end. It
// returns the line it closes on, and false when it never closes.
func skipFlow(lines []string, start, col int) (int, bool) {
	depth := 0
	quote := byte(0)
	for i := start; i < len(lines); i++ {
		l := lines[i]
		from := 0
		if i == start {
			from = col
		}
		for j := from; j < len(l); j++ {
			c := l[j]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '#' && (j == 0 || l[j-1] == ' ' || l[j-1] == '\t'):
				j = len(l)
			case c == '[' || c == '{':
				depth++
			case c == ']' || c == '}':
				depth--
				if depth == 0 {
					return i, true
				}
			}
		}
	}
	return len(lines), false
}

// skipQuoted follows a quoted scalar that starts value on lines[start] to its end.
func skipQuoted(lines []string, start int, value string) (int, bool) {
	q := value[0]
	rest := value[1:]
	for i := start; i < len(lines); i++ {
		if i > start {
			rest = lines[i]
		}
		for j := 0; j < len(rest); j++ {
			switch {
			case q == '"' && rest[j] == '\\':
				j++
			case rest[j] == q && q == '\'' && j+1 < len(rest) && rest[j+1] == '\'':
				j++ // '' inside single quotes
			case rest[j] == q:
				return i, true
			}
		}
	}
	return len(lines), false
}

// levelsText is "0, 2 or 4".
func levelsText(levels []int) string {
	var b bytes.Buffer
	for i, l := range levels {
		switch {
		case i == 0:
		case i == len(levels)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(l))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
