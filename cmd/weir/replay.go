package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"
	"weir/config"
	"weir/dataplane/engine"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"weir/dataplane"
	"weir/dataplane/packet"
	"weir/geneve"
	"weir/vxlan"
)

const replayUsage = `usage: weir replay [-config FILE] -eve OUT.json [FLAGS] PCAP...

Runs capture files (pcap or pcapng) through the same pipeline as weir run. Outer
frames are Ethernet (or raw IP, or Linux cooked) carrying IPv4 or IPv6 UDP to 4789
(VXLAN, Traffic Mirroring) or 6081 (GENEVE, with an IP or Ethernet payload); frames
that are not tunnelled are processed as plain traffic. Writes EVE (a flow record for
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
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	cfgPath := fs.String("config", "", "configuration `FILE` (sessions, filters, policy, outputs)")
	evePath := fs.String("eve", "", "write EVE JSON to `FILE` (required; - for stdout)")
	pcapDir := fs.String("pcap-dir", "", "write the mirrored packets' pcaps to `DIR` (overrides outputs.pcap.dir)")
	flowLog := fs.String("flowlog", "", "write flow-log records to `FILE` (overrides outputs.flowlog.path)")
	if err := fs.Parse(args); err != nil {
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
	r := &replayer{e: e, w: e.Pipeline.NewWorker(), b: dataplane.NewBatch(1), progress: isTerminalWriter(stderr), stderr: stderr}
	start := time.Now()
	for _, path := range fs.Args() {
		if err := r.file(path); err != nil {
			e.Flush(r.last)
			e.CloseOutputs()
			return err
		}
	}
	e.Interval(r.last + 1)
	e.Flush(r.last)
	if err := e.CloseOutputs(); err != nil {
		return err
	}
	sum := r.summary(fs.Args(), *evePath)
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

// replayer feeds capture frames to the pipeline one at a time, so that each packet
// carries its own capture time.
type replayer struct {
	e          *engine.Engine
	w          *dataplane.Worker
	b          *dataplane.Batch
	last       int64 // newest capture time seen, unix ns
	nextExpire int64
	nextIntvl  int64
	unreadable uint64
	progress   bool
	stderr     io.Writer
}

// packetSource is what pcapgo's pcap and pcapng readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, captureInfo, error)
	LinkType() layers.LinkType
}

type captureInfo struct {
	ts   time.Time
	link layers.LinkType // this packet's link type (pcapng files may mix them)
}

type pcapSource struct{ r *pcapgo.Reader }

func (s pcapSource) ReadPacketData() ([]byte, captureInfo, error) {
	d, ci, err := s.r.ReadPacketData()
	return d, captureInfo{ci.Timestamp, s.r.LinkType()}, err
}
func (s pcapSource) LinkType() layers.LinkType { return s.r.LinkType() }

type ngSource struct{ r *pcapgo.NgReader }

func (s ngSource) ReadPacketData() ([]byte, captureInfo, error) {
	d, ci, err := s.r.ReadPacketData()
	link := s.r.LinkType()
	if len(ci.AncillaryData) > 0 {
		if l, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			link = l
		}
	}
	return d, captureInfo{ci.Timestamp, link}, err
}
func (s ngSource) LinkType() layers.LinkType { return s.r.LinkType() }

// counting counts bytes read, for progress.
type counting struct {
	r io.Reader
	n int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (r *replayer) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	cr := &counting{r: f}
	br := bufio.NewReaderSize(cr, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("%s: not a capture file: %w", path, err)
	}
	var src packetSource
	if binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		src = ngSource{ng}
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		src = pcapSource{pr}
	}
	lastShown := time.Now()
	for n := 0; ; n++ {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: packet %d: %w", path, n+1, err)
		}
		r.packet(ci.link, data, ci.ts.UnixNano())
		if r.progress && n%4096 == 0 && time.Since(lastShown) > 200*time.Millisecond {
			lastShown = time.Now()
			fmt.Fprintf(r.stderr, "\r%s: %d packets, %d%%", path, n+1, 100*cr.n/max(st.Size(), 1))
		}
	}
	if r.progress {
		fmt.Fprintf(r.stderr, "\r%s: done%30s\n", path, "")
	}
	return nil
}

// packet sorts one captured frame into a slot and runs the pipeline over it.
func (r *replayer) packet(link layers.LinkType, data []byte, ts int64) {
	s := &r.b.Slots[0]
	s.Reset()
	if !classify(s, link, data) {
		r.unreadable++
		return
	}
	if ts > r.last {
		r.last = ts
	}
	r.b.N, r.b.Now = 1, ts
	r.w.Process(r.b)
	// Time in a capture moves as its packets say.
	if r.nextExpire == 0 {
		r.nextExpire = ts + int64(time.Second)
		r.nextIntvl = ts + int64(r.e.Config.Outputs.FlowLog.Interval)
	}
	if ts >= r.nextExpire {
		r.e.Expire(ts)
		r.nextExpire = ts + int64(time.Second)
	}
	if ts >= r.nextIntvl {
		r.e.Interval(ts)
		// Realign after a gap in the capture: one walk, not one per interval missed.
		iv := int64(r.e.Config.Outputs.FlowLog.Interval)
		r.nextIntvl = ts + iv - (ts-r.nextIntvl)%iv
	}
}

// classify reads the outer headers of a captured frame: UDP to 4789 is VXLAN, to
// 6081 GENEVE, and anything else plain traffic.
func classify(s *dataplane.Slot, link layers.LinkType, data []byte) bool {
	var frame, ip []byte
	switch link {
	case layers.LinkTypeEthernet:
		frame = data
		ip = etherPayload(data)
	case layers.LinkTypeRaw, 12, 228, 229: // raw IP (DLT_RAW is 12 on some systems; IPv4/IPv6 raw)
		ip = data
	case layers.LinkTypeLinuxSLL:
		if len(data) < 16 {
			return false
		}
		if t := binary.BigEndian.Uint16(data[14:16]); t == 0x0800 || t == 0x86dd {
			ip = data[16:]
		}
	case layers.LinkTypeLinuxSLL2: // what tcpdump -i any writes now
		if len(data) < 20 {
			return false
		}
		if t := binary.BigEndian.Uint16(data[0:2]); t == 0x0800 || t == 0x86dd {
			ip = data[20:]
		}
	case layers.LinkTypeNull, layers.LinkTypeLoop: // BSD loopback: a 4-byte family
		if len(data) < 4 {
			return false
		}
		ip = data[4:]
	default:
		return false
	}
	if src, dst, sport, dport, payload, ok := outerUDP(ip); ok && (dport == vxlan.Port || dport == geneve.Port) {
		s.Encap = dataplane.EncapVXLAN
		if dport == geneve.Port {
			s.Encap = dataplane.EncapGeneve
		}
		s.Buf = payload
		s.Outer = geneve.Outer{Src: src, Dst: dst, SrcPort: sport, DstPort: dport}
		return true
	}
	s.Encap = dataplane.EncapNone
	switch {
	case frame != nil:
		s.Buf, s.Frame = frame, frame
	case ip != nil:
		s.Buf, s.Inner = ip, ip
	default:
		return false
	}
	return true
}

func etherPayload(f []byte) []byte {
	off := 12
	for range 3 {
		if len(f) < off+2 {
			return nil
		}
		switch binary.BigEndian.Uint16(f[off:]) {
		case 0x8100, 0x88a8:
			off += 4
		case 0x0800, 0x86dd:
			return f[off+2:]
		default:
			return nil
		}
	}
	return nil
}

// outerUDP reads an IPv4 or IPv6 header followed by UDP (not a later fragment).
func outerUDP(ip []byte) (src, dst netip.Addr, sport, dport uint16, payload []byte, ok bool) {
	var l4 []byte
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < 20 || total < ihl || len(ip) < ihl || ip[9] != 17 || binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
			return
		}
		if total < len(ip) {
			ip = ip[:total] // Ethernet padding
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		l4 = ip[ihl:]
	case len(ip) >= 40 && ip[0]>>4 == 6 && ip[6] == 17:
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		l4 = ip[40:]
		if pl := int(binary.BigEndian.Uint16(ip[4:6])); pl < len(l4) {
			l4 = l4[:pl]
		}
	default:
		return
	}
	if len(l4) < 8 {
		return
	}
	sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	ulen := int(binary.BigEndian.Uint16(l4[4:6]))
	if ulen >= 8 && ulen <= len(l4) {
		l4 = l4[:ulen]
	}
	return src, dst, sport, dport, l4[8:], true
}

func (r *replayer) summary(files []string, eve string) replaySummary {
	t := r.e.Pipeline.Totals()
	sum := replaySummary{
		Files: files, EVE: eve, Unreadable: r.unreadable,
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
	for _, s := range r.e.Sessions.List() {
		if int(s.Index) < len(t.Sessions) {
			st := t.Sessions[s.Index]
			if st.Received != 0 {
				sum.Sessions[s.Name] = sessionSummary{st.Received, st.Accepted, st.Rejected, st.Truncated, st.Duplicates}
			}
		}
	}
	a, d := r.e.FlowsEnded()
	sum.Flows = a + d
	return sum
}
