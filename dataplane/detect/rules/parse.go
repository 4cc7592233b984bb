package rules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Limits on input size; larger input is an error, not a truncation.
const (
	MaxRuleLen    = 64 << 10  // one rule, continuation lines joined
	MaxContentLen = 4 << 10   // one content, decoded
	MaxFileSize   = 256 << 20 // one rules file
)

// fileSizeLimit is MaxFileSize, lowered by tests.
var fileSizeLimit int64 = MaxFileSize

// Set is the result of parsing rules files: the rules weir runs and the ones it
// skipped because they use something it does not support.
type Set struct {
	Rules   []*Rule
	Skipped []Skip
}

// Skip is a rule that parsed but uses a keyword (or protocol, or pcre feature) weir
// does not support, so it is left out rather than approximated.
type Skip struct {
	File    string
	Line    int
	SID     uint32
	Keyword string
	Reason  string // why, when more than "unsupported keyword"
}

func (s Skip) String() string {
	return fmt.Sprintf("%s:%d: sid %d: skipped: %s", s.File, s.Line, s.SID,
		(&SkipError{Keyword: s.Keyword, Reason: s.Reason}).Error())
}

// Error is a syntax error in a rule or rules file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" && e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// SkipError is ParseRule's answer for a well-formed rule weir does not support.
type SkipError struct {
	Keyword string
	Reason  string
}

func (e *SkipError) Error() string {
	if e.Reason != "" {
		return e.Keyword + ": " + e.Reason
	}
	return fmt.Sprintf("unsupported keyword %q", e.Keyword)
}

// ParseRule parses one rule (no comments or continuation lines). A syntax error is
// an *Error; a rule using an unsupported keyword gives a *SkipError. Here and in
// the other functions, nil vars means DefaultVars.
func ParseRule(text string, vars *Vars) (*Rule, error) {
	p := newRuleParser(newResolver(vars))
	r, err := p.parse(text)
	if err != nil {
		var skip *SkipError
		if errors.As(err, &skip) {
			return nil, skip
		}
		return nil, &Error{Msg: p.errMsg(err)}
	}
	return r, nil
}

// ParseFile parses a rules file; see Parse.
func ParseFile(path string, vars *Vars) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > fileSizeLimit {
		return nil, &Error{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", fileSizeLimit)}
	}
	return Parse(f, path, vars)
}

// Parse reads rules, one a line: blank lines and lines starting with # are
// skipped, and a line ending in \ continues on the next. A syntax error (a
// duplicate gid:sid included) is an *Error naming file, line and, when known, the
// sid; Parse reads on to report up to MaxErrors of them at once (joined with
// errors.Join when there are several), so that a rule feed is fixed in one pass.
func Parse(r io.Reader, file string, vars *Vars) (*Set, error) {
	return parse(r, file, newResolver(vars), &Set{}, map[sidKey]place{})
}

// MaxErrors is how many syntax errors one file reports before Parse stops.
const MaxErrors = 20

type sidKey struct{ gid, sid uint32 }

type place struct {
	file string
	line int
}

func parse(r io.Reader, file string, res *resolver, set *Set, seen map[sidKey]place) (*Set, error) {
	br := bufio.NewReaderSize(&io.LimitedReader{R: r, N: fileSizeLimit + 1}, 64<<10)
	p := newRuleParser(res)
	var (
		rule      strings.Builder
		lineNo    int
		startLine int
		read      int64
		errs      []error
	)
	fail := func(e *Error) (*Set, error) {
		errs = append(errs, e)
		if len(errs) == 1 {
			return nil, e
		}
		return nil, errors.Join(errs...)
	}
	for {
		line, tooLong, err := readLine(br)
		if tooLong {
			return fail(&Error{File: file, Line: lineNo + 1, Msg: fmt.Sprintf("line is longer than %d bytes", MaxRuleLen)})
		}
		if err != nil && err != io.EOF {
			return fail(&Error{File: file, Line: lineNo + 1, Msg: err.Error()})
		}
		if line == "" && err == io.EOF {
			break
		}
		read += int64(len(line))
		if read > fileSizeLimit {
			return fail(&Error{File: file, Line: lineNo + 1, Msg: fmt.Sprintf("file is larger than %d bytes", fileSizeLimit)})
		}
		lineNo++
		line = strings.TrimRight(line, "\r\n")
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // a byte-order mark some editors write
		}
		if rule.Len() == 0 {
			startLine = lineNo
			// As Suricata: a comment or blank line is dropped before any
			// continuation check, so "# ... \" never swallows the next line.
			if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
				if err == io.EOF {
					break
				}
				continue
			}
		}
		if rule.Len()+len(line) > MaxRuleLen {
			return fail(&Error{File: file, Line: startLine, Msg: fmt.Sprintf("rule is longer than %d bytes", MaxRuleLen)})
		}
		if t := strings.TrimRight(line, " \t"); strings.HasSuffix(t, `\`) {
			rule.WriteString(t[:len(t)-1])
			if err == nil {
				continue
			}
		} else {
			rule.WriteString(line)
		}
		text := strings.TrimSpace(rule.String())
		rule.Reset()
		if text == "" || text[0] == '#' {
			if err == io.EOF {
				break
			}
			continue
		}
		r, perr := p.parse(text)
		if perr != nil {
			var skip *SkipError
			if errors.As(perr, &skip) {
				set.Skipped = append(set.Skipped, Skip{File: file, Line: startLine, SID: p.sid, Keyword: skip.Keyword, Reason: skip.Reason})
				continue
			}
			errs = append(errs, &Error{File: file, Line: startLine, Msg: p.errMsg(perr)})
			if len(errs) == MaxErrors || err == io.EOF {
				break
			}
			continue
		}
		r.File, r.Line = file, startLine
		k := sidKey{r.GID, r.SID}
		if first, dup := seen[k]; dup {
			errs = append(errs, &Error{File: file, Line: startLine, Msg: fmt.Sprintf("duplicate sid %d:%d (first at %s:%d)", r.GID, r.SID, first.file, first.line)})
			if len(errs) == MaxErrors || err == io.EOF {
				break
			}
			continue
		}
		seen[k] = place{file, startLine}
		set.Rules = append(set.Rules, r)
		if err == io.EOF {
			break
		}
	}
	switch len(errs) {
	case 0:
		return set, nil
	case 1:
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// readLine reads one line, giving up (tooLong) past MaxRuleLen so that a file
// without newlines is not read into memory whole.
func readLine(br *bufio.Reader) (line string, tooLong bool, err error) {
	chunk, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return string(chunk), false, err
	}
	buf := append([]byte(nil), chunk...)
	for err == bufio.ErrBufferFull {
		if len(buf) > MaxRuleLen+2 {
			return "", true, nil
		}
		chunk, err = br.ReadSlice('\n')
		buf = append(buf, chunk...)
	}
	if len(buf) > MaxRuleLen+2 {
		return "", true, nil
	}
	return string(buf), false, err
}

// LoadGlobs parses every file the patterns match, pattern by pattern and in name
// order within one, into one Set. A pattern matching nothing is an error, and so is
// a gid:sid given twice, in one file or two. A file matched twice is read once.
func LoadGlobs(patterns []string, vars *Vars) (*Set, error) {
	res := newResolver(vars)
	set := &Set{}
	seen := map[sidKey]place{}
	done := map[string]bool{}
	for _, pat := range patterns {
		files, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rules %q: %w", pat, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("rules %q: no file matches", pat)
		}
		for _, name := range files {
			if done[name] {
				continue
			}
			done[name] = true
			if err := loadFile(name, res, set, seen); err != nil {
				return nil, err
			}
		}
	}
	return set, nil
}

func loadFile(name string, res *resolver, set *Set, seen map[sidKey]place) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &Error{File: name, Msg: "is a directory"}
	}
	if fi.Size() > fileSizeLimit {
		return &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", fileSizeLimit)}
	}
	_, err = parse(f, name, res, set, seen)
	return err
}

// errMsg prefixes a rule's error with its sid when the rule gave one.
func (p *ruleParser) errMsg(err error) string {
	if p.sid != 0 {
		return "sid " + strconv.FormatUint(uint64(p.sid), 10) + ": " + err.Error()
	}
	return err.Error()
}
