package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"weir/config"
	"weir/dataplane"
	"weir/dataplane/engine"
	"weir/dataplane/flow"
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
summary of what the capture held (to stderr when -eve is -, so that stdout is EVE
alone). Frames of a link type weir cannot read are skipped with a warning; a
replay that could read no frame at all fails.

flags:
`

// replaySummary is what weir replay prints.
type replaySummary struct {
	Files        []string          `json:"files"`
	Packets      map[string]uint64 `json:"packets"` // by encapsulation
	Actions      map[string]uint64 `json:"actions"` // by outcome
	Flows        uint64            `json:"flows"`
	DecodeErrors map[string]uint64 `json:"decode_errors"` // "encap/reason"
	Unreadable   uint64            `json:"unreadable"`    // frames not even an outer header could be read from
	// UnknownLinkTypes counts the unreadable frames of link types weir cannot read.
	UnknownLinkTypes map[string]uint64         `json:"unknown_link_types,omitempty"`
	Sessions         map[string]sessionSummary `json:"sessions,omitempty"`
	// VNIs are the VXLAN network identifiers seen, with the session that took
	// each (null: none, so its packets were dropped as no_session).
	VNIs                []engine.VNIReport `json:"vnis"`
	UntrackedVNIPackets uint64             `json:"untracked_vni_packets,omitempty"`
	// OuterSources are the tunnels' senders with the most packets (the mirrored
	// ENIs, the GWLBs), at most topSources of them.
	OuterSources []sourceCount `json:"outer_sources"`
	// Protocols are the inner packets and flows by transport protocol ("tcp",
	// "udp", "icmp", "ipv6-icmp", or the number); packets never decoded (a VNI with
	// no session, a denied source, a malformed tunnel) are not counted here.
	Protocols map[string]*protoCount `json:"protocols"`
	EVE       string                 `json:"eve"`
	// Records the outputs could not take (a full queue): replay fails when any is lost.
	EVEDropped     uint64  `json:"eve_dropped"`
	FlowLogDropped uint64  `json:"flowlog_dropped"`
	PCAPDropped    uint64  `json:"pcap_dropped"`
	ElapsedS       float64 `json:"elapsed_s"`
	// Detect is what detection did, when the configuration turns it on.
	Detect *detectSummary `json:"detect,omitempty"`
}

type detectSummary struct {
	Mode          string `json:"mode"`         // detect.mode
	SimulateIPS   bool   `json:"simulate_ips"` // -simulate-ips: without it, replayed traffic is never blocked
	Rules         int    `json:"rules"`
	Skipped       int    `json:"rules_skipped"`
	AlertsAllowed uint64 `json:"alerts_allowed"`
	AlertsBlocked uint64 `json:"alerts_blocked"`
	BlockedFlows  uint64 `json:"blocked_flows"`
}

// topSources is how many outer sources the summary lists.
const topSources = 10

type sourceCount struct {
	Source  string `json:"source"`
	Packets uint64 `json:"packets"`
}

type protoCount struct {
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

// census counts what the capture held, as replay reads it.
type census struct {
	mu        sync.Mutex // flows end on the reader and on the flushing goroutine
	sources   map[netip.Addr]uint64
	protocols map[string]*protoCount
}

func newCensus() *census {
	return &census{sources: map[netip.Addr]uint64{}, protocols: map[string]*protoCount{}}
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(p))
}

func (c *census) proto(p uint8) *protoCount {
	n := protoName(p)
	pc := c.protocols[n]
	if pc == nil {
		pc = &protoCount{}
		c.protocols[n] = pc
	}
	return pc
}

func (c *census) packet(s *dataplane.Slot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.Encap != dataplane.EncapNone && s.Outer.Src.IsValid() {
		c.sources[s.Outer.Src]++
	}
	if s.Packet.Family != 0 {
		c.proto(s.Packet.Proto).Packets++
	}
}

func (c *census) flow(r *flow.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.proto(r.Proto).Flows++
}

// top is the outer sources with the most packets, most first.
func (c *census) top(n int) []sourceCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]sourceCount, 0, len(c.sources))
	for a, v := range c.sources {
		out = append(out, sourceCount{a.String(), v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Packets != out[j].Packets {
			return out[i].Packets > out[j].Packets
		}
		return out[i].Source < out[j].Source
	})
	return out[:min(n, len(out))]
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
	simulateIPS := fs.Bool("simulate-ips", false, "apply detect.mode: ips to the replayed traffic as if it were inline: drop rules block (as Suricata's --simulate-ips)")
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
	if e.Detect != nil {
		e.Detect.SimulateIPS = *simulateIPS
	}
	cen := newCensus()
	e.OnFlowEnded = cen.flow
	clock := &pcapin.Clock{Expire: e.Expire, Interval: e.Interval, Every: cfg.Outputs.FlowLog.Interval}
	pcfg := pcapin.Config{Files: fs.Args(), OnTime: clock.Tick, OnPacket: cen.packet}
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
	sum.OuterSources = cen.top(topSources)
	sum.Protocols = cen.protocols
	for link, n := range in.UnknownLinkTypes() {
		if sum.UnknownLinkTypes == nil {
			sum.UnknownLinkTypes = map[string]uint64{}
		}
		sum.UnknownLinkTypes[link.String()] = n
		fmt.Fprintf(stderr, "weir replay: warning: skipped %d frames of link type %d (%s), which weir cannot read; "+
			"it reads Ethernet, raw IP, Linux cooked (SLL, SLL2) and BSD loopback\n", n, int(link), link)
	}
	sum.ElapsedS = time.Since(start).Seconds()
	sum.EVEDropped = e.EVE.Dropped()
	if e.FlowLog != nil {
		sum.FlowLogDropped = e.FlowLog.Dropped()
	}
	if e.PCAP != nil {
		sum.PCAPDropped = e.PCAP.Dropped()
	}
	out := stdout
	if *evePath == "-" {
		out = stderr // stdout is the EVE stream
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sum); err != nil {
		return err
	}
	if in.Readable() == 0 && sum.Unreadable != 0 {
		return fmt.Errorf("replay: none of the %d frames could be read", sum.Unreadable)
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
	rep := e.MirrorReport()
	sum.VNIs, sum.UntrackedVNIPackets = rep.VNIs, rep.UntrackedPackets
	a, d := e.FlowsEnded()
	sum.Flows = a + d
	if e.Detect != nil {
		dt := e.Detect.Totals(e.Pipeline)
		info := e.DetectInfo()
		sum.Detect = &detectSummary{Mode: e.Current().Detect.Mode, SimulateIPS: e.Detect.SimulateIPS, Rules: info.Rules, Skipped: len(info.Skipped),
			AlertsAllowed: dt.AlertsAllowed, AlertsBlocked: dt.AlertsBlocked, BlockedFlows: dt.BlockedFlows}
	}
	return sum
}
