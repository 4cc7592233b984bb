package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"weir/config"
	"weir/dataplane/detect"
	"weir/dataplane/detect/intel"
	"weir/dataplane/detect/rules"
)

// DetectInfo says what a detection build loaded.
type DetectInfo struct {
	Rules        int          // rules compiled
	Skipped      []rules.Skip // rules not run, each with its place and why
	IntelEntries int          // addresses, prefixes and domains of the threat-intel lists
}

// LoadRules parses the rule files cfg names with its vars, as check-config and
// the engine do. A syntax error stops it (FILE:LINE: message); rules using what
// weir does not support are skipped and listed.
func LoadRules(cfg *config.Config) (*rules.Set, error) {
	d := &cfg.Detect
	vars := rules.DefaultVars()
	if err := vars.Merge(d.Vars); err != nil {
		var ve *rules.VarError
		if errors.As(err, &ve) {
			return nil, &config.Error{File: d.File, Line: d.VarLines[ve.Name], Msg: "detect.vars." + ve.Name + ": " + ve.Err.Error()}
		}
		return nil, &config.Error{File: d.File, Msg: "detect.vars: " + err.Error()}
	}
	if len(d.Rules) == 0 {
		return &rules.Set{}, nil
	}
	for i, g := range d.Rules {
		// A pattern that names nothing is the configuration's mistake: say where.
		if m, _ := filepath.Glob(g); len(m) == 0 {
			return nil, &config.Error{File: d.File, Line: d.RuleLines[i], Msg: fmt.Sprintf("detect.rules: %s matches no file", g)}
		}
	}
	set, err := rules.LoadGlobs(d.Rules, vars)
	if err != nil {
		var re *rules.Error
		if errors.As(err, &re) {
			return nil, err // FILE:LINE of the rule file
		}
		return nil, fmt.Errorf("detect.rules: %w", err)
	}
	return set, nil
}

// buildDetect compiles the detection engine cfg describes.
func buildDetect(cfg *config.Config, bits *detect.Flowbits, log *slog.Logger) (*detect.Engine, DetectInfo, error) {
	set, err := LoadRules(cfg)
	if err != nil {
		return nil, DetectInfo{}, err
	}
	d := &cfg.Detect
	opts := detect.Options{
		PortScan:    detect.PortScan{Ports: d.PortScan.Ports, Hosts: d.PortScan.Hosts, Window: d.PortScan.Window, Repeat: d.PortScan.Repeat},
		SYNFlood:    detect.SYNFlood{HalfOpen: d.SYNFlood.HalfOpen, Window: d.SYNFlood.Window, Repeat: d.SYNFlood.Repeat},
		StreamDepth: uint32(min(d.StreamDepth, 1<<31)),
		AlertPacket: d.AlertPacket,
	}
	if d.Mode == "ips" {
		opts.Mode = detect.ModeIPS
	}
	entries := 0
	if len(d.Intel) != 0 {
		lists := make([]*intel.List, 0, len(d.Intel))
		for _, il := range d.Intel {
			load := intel.LoadIPs
			if il.Type == "domain" {
				load = intel.LoadDomains
			}
			l, err := load(il.Path, il.Category, il.Block)
			if err != nil {
				var fe *fs.PathError
				if errors.As(err, &fe) { // the file itself, not a line of it: say which key named it
					err = &config.Error{File: d.File, Line: il.Line, Msg: "detect.intel: " + err.Error()}
				}
				return nil, DetectInfo{}, err
			}
			entries += l.Len()
			lists = append(lists, l)
		}
		opts.Intel = intel.NewSet(lists...)
	}
	eng, skips := detect.Compile(set, opts, bits)
	info := DetectInfo{Rules: eng.Rules(), Skipped: append(set.Skipped, skips...), IntelEntries: entries}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, s := range info.Skipped {
		log.Warn("detect: rule skipped", "rule", s.String())
	}
	return eng, info, nil
}

// DetectInfo is what the detection in force loaded.
func (e *Engine) DetectInfo() DetectInfo {
	if p := e.detectInfo.Load(); p != nil {
		return *p
	}
	return DetectInfo{}
}

// CheckDetect loads and compiles what cfg's detect section names, as weir run
// would, for check-config.
func CheckDetect(cfg *config.Config) (DetectInfo, error) {
	_, info, err := buildDetect(cfg, detect.NewFlowbits(), slog.New(slog.DiscardHandler))
	return info, err
}
