package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"weir/config"
	"weir/dataplane"
	"weir/dataplane/engine"
	"weir/dataplane/packet"
	"weir/dataplane/pcapin"
	"weir/geneve"
	"weir/vxlan"
)

const replayUsage = `usage: weir replay [-config FILE] -eve OUT.json [FLAGS] PCAP...

Runs capture files (pcap or pcapng, optionally gzipped) through the same pipeline
as weir run, each packet at its capture time. Outer frames are Ethernet (or raw IP,
Linux cooked, BSD loopback) carrying IPv4 or IPv6 UDP to 4789 (VXLAN, Traffic
Mirroring) or 6081 (GENEVE, with an IP or Ethernet payload); frames that are not
tunnelled are processed as plain traffic. Records longer than 262144 bytes are
refused. Writes EVE (a flow record for
every flow at the end) and the outputs the configuration names, and prints a JSON
summary.

flags:
`

// replaySummary is what weir replay prints.
type replaySummary struct {
	Files        []string                  `json:"files"`
	Packets      map[string]uint64         `json:"packets"` // by encapsulation
	Actions      map[string]uint64         `json:"actions"` // by outcome
	Flows        uint64                    `json:"flows"`
	DecodeErrors map[string]uint64         `json:"decode_errors"` // "encap/reason"
	Unreadable   uint64                    `json:"unreadable"`    // frames not even an outer header could be read from
	Sessions     map[string]sessionSummary `json:"sessions,omitempty"`
	EVE          string                    `json:"eve"`
	// Records the outputs could not take (a full queue): replay fails when any is lost.
	EVEDropped     uint64  `json:"eve_dropped"`
	FlowLogDropped uint64  `json:"flowlog_dropped"`
	PCAPDropped    uint64  `json:"pcap_dropped"`
	ElapsedS       float64 `json:"elapsed_s"`
}

type sessionSummary struct {
	Received   uint64 `json:"received"`
	Accepted   uint64 `json:"accepted"`
	Rejected   uint64 `json:"rejected"`
	Truncated  uint64 `json:"truncated"`
	Duplicates uint64 `json:"duplicates"`
}

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, replayUsage)
	cfgPath := fs.String("config", "", "configuration `FILE` (sessions, filters, policy, outputs)")
	evePath := fs.String("eve", "", "write EVE JSON to `FILE` (required; - for stdout)")
	pcapDir := fs.String("pcap-dir", "", "write the mirrored packets' pcaps to `DIR` (overrides outputs.pcap.dir)")
	flowLog := fs.String("flowlog", "", "write flow-log records to `FILE` (overrides outputs.flowlog.path)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *evePath == "" || fs.NArg() == 0 {
		fs.Usage()
		return usageError{errors.New("need -eve OUT.json and at least one capture file")}
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	cfg.Outputs.EVE = *evePath
	if *pcapDir != "" {
		cfg.Outputs.PCAP.Dir = *pcapDir
	}
	if *flowLog != "" {
		cfg.Outputs.FlowLog.Path = *flowLog
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := engine.New(cfg, log, true)
	if err != nil {
		return err
	}
	clock := &pcapin.Clock{Expire: e.Expire, Interval: e.Interval, Every: cfg.Outputs.FlowLog.Interval}
	pcfg := pcapin.Config{Files: fs.Args(), OnTime: clock.Tick}
	if isTerminalWriter(stderr) {
		pcfg.Progress = stderr
	}
	in := pcapin.New(pcfg)
	start := time.Now()
	if err := in.Run(context.Background(), e.Pipeline, nil); err != nil {
		e.Flush(in.Last())
		e.CloseOutputs()
		return err
	}
	e.Interval(in.Last() + 1)
	e.Flush(in.Last())
	if err := e.CloseOutputs(); err != nil {
		return err
	}
	sum := summarize(e, fs.Args(), *evePath)
	sum.Unreadable = in.Unreadable()
	sum.ElapsedS = time.Since(start).Seconds()
	sum.EVEDropped = e.EVE.Dropped()
	if e.FlowLog != nil {
		sum.FlowLogDropped = e.FlowLog.Dropped()
	}
	if e.PCAP != nil {
		sum.PCAPDropped = e.PCAP.Dropped()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sum); err != nil {
		return err
	}
	if sum.EVEDropped+sum.FlowLogDropped+sum.PCAPDropped != 0 {
		return fmt.Errorf("replay: outputs lost records (eve %d, flow log %d, pcap %d)",
			sum.EVEDropped, sum.FlowLogDropped, sum.PCAPDropped)
	}
	return nil
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// summarize counts what the engine's pipeline did with the replayed packets.
func summarize(e *engine.Engine, files []string, eve string) replaySummary {
	t := e.Pipeline.Totals()
	sum := replaySummary{
		Files: files, EVE: eve,
		Packets: map[string]uint64{}, Actions: map[string]uint64{}, DecodeErrors: map[string]uint64{},
		Sessions: map[string]sessionSummary{},
	}
	for e := dataplane.Encap(0); e < dataplane.NumEncaps; e++ {
		for a := dataplane.Action(0); a < dataplane.NumActions(); a++ {
			if v := t.Packet(e, a); v != 0 {
				sum.Packets[e.String()] += v
				sum.Actions[a.String()] += v
			}
		}
		for rsn, v := range t.InnerErr[e] {
			if v != 0 {
				sum.DecodeErrors[e.String()+"/inner_"+packet.Reason(rsn).String()] = v
			}
		}
	}
	for rsn, v := range t.GeneveErr {
		if v != 0 {
			sum.DecodeErrors["geneve/"+geneve.Reason(rsn).String()] = v
		}
	}
	for rsn, v := range t.VXLANErr {
		if v != 0 {
			sum.DecodeErrors["vxlan/"+vxlan.Reason(rsn).String()] = v
		}
	}
	for _, s := range e.Sessions.List() {
		if int(s.Index) < len(t.Sessions) {
			st := t.Sessions[s.Index]
			if st.Received != 0 {
				sum.Sessions[s.Name] = sessionSummary{st.Received, st.Accepted, st.Rejected, st.Truncated, st.Duplicates}
			}
		}
	}
	a, d := e.FlowsEnded()
	sum.Flows = a + d
	return sum
}
