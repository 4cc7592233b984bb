package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureStart is when every built capture begins; each packet is 1 ms after the last.
var captureStart = time.Unix(1_700_000_000, 0).UTC()

// capture is a list of frames being built, written to a pcap at the end. Its frames
// are numbered from 1, as pcap_cnt counts them.
type capture struct {
	link   layers.LinkType
	frames [][]byte
	times  []time.Time
	// step is the time between packets.
	step time.Duration
}

func newCapture() *capture { return &capture{link: layers.LinkTypeEthernet, step: time.Millisecond} }

// add appends a frame and returns its number in the capture.
func (c *capture) add(frame []byte) int {
	ts := captureStart
	if n := len(c.times); n > 0 {
		ts = c.times[n-1].Add(c.step)
	}
	c.frames = append(c.frames, frame)
	c.times = append(c.times, ts)
	return len(c.frames)
}

// wait moves the capture's clock forward by d before the next frame.
func (c *capture) wait(d time.Duration) {
	if n := len(c.times); n > 0 {
		c.times[n-1] = c.times[n-1].Add(d)
	}
}

func (c *capture) write(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capture.pcap")
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, c.link); err != nil {
		t.Fatal(err)
	}
	for i, f := range c.frames {
		ci := gopacket.CaptureInfo{Timestamp: c.times[i], CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	clientMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	serverMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// ipFrame serializes an IP packet (IPv4 or IPv6 as src is) carrying transport and
// payload, in an Ethernet frame when eth is set.
func ipFrame(t *testing.T, eth bool, src, dst netip.Addr, transport gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	var net gopacket.NetworkLayer
	var ethType layers.EthernetType
	var ipLayer gopacket.SerializableLayer
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		net, ethType, ipLayer = ip, layers.EthernetTypeIPv4, ip
		switch transport.(type) {
		case *layers.TCP:
			ip.Protocol = layers.IPProtocolTCP
		case *layers.UDP:
			ip.Protocol = layers.IPProtocolUDP
		}
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		net, ethType, ipLayer = ip, layers.EthernetTypeIPv6, ip
		switch transport.(type) {
		case *layers.TCP:
			ip.NextHeader = layers.IPProtocolTCP
		case *layers.UDP:
			ip.NextHeader = layers.IPProtocolUDP
		}
	}
	switch l := transport.(type) {
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(net)
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(net)
	}
	ls := []gopacket.SerializableLayer{ipLayer, transport, gopacket.Payload(payload)}
	if eth {
		ls = append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: ethType}}, ls...)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// udpFrame is an Ethernet frame of one UDP datagram.
func udpFrame(t *testing.T, src, dst netip.AddrPort, payload []byte) []byte {
	return ipFrame(t, true, src.Addr(), dst.Addr(), &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}, payload)
}

// tcpConn builds the packets of one TCP connection into a capture, keeping each
// side's sequence numbers.
type tcpConn struct {
	t                 *testing.T
	c                 *capture
	client, server    netip.AddrPort
	clientSeq, srvSeq uint32
}

func newTCPConn(t *testing.T, c *capture, client, server string) *tcpConn {
	return &tcpConn{t: t, c: c, client: netip.MustParseAddrPort(client), server: netip.MustParseAddrPort(server),
		clientSeq: 1000, srvSeq: 5000}
}

// segment builds a segment from the client (toServer) or the server at the given
// sequence number, without adding it to the capture.
func (k *tcpConn) segment(toServer bool, seq, ack uint32, syn, isAck, fin bool, payload []byte) []byte {
	src, dst := k.client, k.server
	if !toServer {
		src, dst = dst, src
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, Ack: ack, SYN: syn, ACK: isAck, FIN: fin, PSH: len(payload) > 0, Window: 65535}
	return ipFrame(k.t, true, src.Addr(), dst.Addr(), tcp, payload)
}

// handshake adds the three-way handshake.
func (k *tcpConn) handshake() {
	k.c.add(k.segment(true, k.clientSeq, 0, true, false, false, nil))
	k.clientSeq++
	k.c.add(k.segment(false, k.srvSeq, k.clientSeq, true, true, false, nil))
	k.srvSeq++
	k.c.add(k.segment(true, k.clientSeq, k.srvSeq, false, true, false, nil))
}

// send adds a data segment in order and returns its frame number.
func (k *tcpConn) send(toServer bool, payload string) int {
	n := k.c.add(k.dataAt(toServer, 0, payload))
	if toServer {
		k.clientSeq += uint32(len(payload))
	} else {
		k.srvSeq += uint32(len(payload))
	}
	return n
}

// dataAt builds a data segment off bytes past the side's next sequence number.
func (k *tcpConn) dataAt(toServer bool, off uint32, payload string) []byte {
	if toServer {
		return k.segment(true, k.clientSeq+off, k.srvSeq, false, true, false, []byte(payload))
	}
	return k.segment(false, k.srvSeq+off, k.clientSeq, false, true, false, []byte(payload))
}

// eveEvent is the part of an EVE event these tests check.
type eveEvent struct {
	EventType string `json:"event_type"`
	PcapCnt   int    `json:"pcap_cnt"`
	SrcIP     string `json:"src_ip"`
	SrcPort   int    `json:"src_port"`
	DestIP    string `json:"dest_ip"`
	DestPort  int    `json:"dest_port"`
	Proto     string `json:"proto"`
	PktSrc    string `json:"pkt_src"`
	AppProto  string `json:"app_proto"`
	Direction string `json:"direction"`
	Alert     struct {
		Action      string `json:"action"`
		GID         int    `json:"gid"`
		SignatureID int    `json:"signature_id"`
		Rev         int    `json:"rev"`
		Signature   string `json:"signature"`
		Category    string `json:"category"`
		Severity    int    `json:"severity"`
	} `json:"alert"`
	DNS struct {
		Queries []struct {
			RRName string `json:"rrname"`
			RRType string `json:"rrtype"`
		} `json:"queries"`
	} `json:"dns"`
	TLS struct {
		SNI string `json:"sni"`
	} `json:"tls"`
	Tunnel *struct {
		SrcIP    string `json:"src_ip"`
		DestIP   string `json:"dest_ip"`
		SrcPort  int    `json:"src_port"`
		DestPort int    `json:"dest_port"`
		Proto    string `json:"proto"`
		Depth    int    `json:"depth"`
		PcapCnt  int    `json:"pcap_cnt"`
		PktSrc   string `json:"pkt_src"`
	} `json:"tunnel"`
}

// detectRun is what one replay gave.
type detectRun struct {
	sum    replaySummary
	alerts []eveEvent
	stdout string
}

// bySID is the alerts of one signature.
func (r *detectRun) bySID(sid int) []eveEvent {
	var out []eveEvent
	for _, a := range r.alerts {
		if a.Alert.SignatureID == sid {
			out = append(out, a)
		}
	}
	return out
}

// writeDetectConfig writes rules (when not empty) to rules/local.rules and a
// configuration whose detect section is detectYAML (a YAML mapping's members,
// indented by two spaces), naming the rules file, into dir; it returns the
// configuration's path.
func writeDetectConfig(t *testing.T, dir, ruleText, detectYAML string) string {
	t.Helper()
	var cfg strings.Builder
	cfg.WriteString("mirror: {listen: \"\"}\ndetect:\n")
	if ruleText != "" {
		if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rules", "local.rules"), []byte(ruleText), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.WriteString("  rules: [rules/*.rules]\n")
	}
	cfg.WriteString(detectYAML)
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// replayDetect replays the capture with the configuration and returns the summary
// and the alerts, in the order written.
func replayDetect(t *testing.T, cfgPath, capFile string, flags ...string) *detectRun {
	t.Helper()
	eve := filepath.Join(t.TempDir(), "eve.json")
	args := append([]string{"replay", "-config", cfgPath, "-eve", eve}, flags...)
	args = append(args, capFile)
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s\n%s", code, stderr.String(), stdout.String())
	}
	r := &detectRun{stdout: stdout.String()}
	if err := json.Unmarshal(stdout.Bytes(), &r.sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout.String())
	}
	if r.sum.Detect == nil {
		t.Fatalf("summary has no detect object: %s", stdout.String())
	}
	data, err := os.ReadFile(eve)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev eveEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("EVE: %v: %s", err, sc.Text())
		}
		if ev.EventType == "alert" {
			r.alerts = append(r.alerts, ev)
		}
	}
	return r
}

// fullIPv6 is an IPv6 address as Suricata writes it: eight groups of four digits.
func fullIPv6(s string) string {
	b := netip.MustParseAddr(s).As16()
	var out strings.Builder
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		const hex = "0123456789abcdef"
		for _, x := range b[i : i+2] {
			out.WriteByte(hex[x>>4])
			out.WriteByte(hex[x&15])
		}
	}
	return out.String()
}

// wantAlert is what one alert must say; zero fields are not checked.
type wantAlert struct {
	sid, rev, gid       int
	action, signature   string
	category            string
	severity            int
	src, dst            string
	sport, dport        int
	proto               string
	pcapCnt             int
	direction, appProto string
}

func checkAlert(t *testing.T, got eveEvent, w wantAlert) {
	t.Helper()
	type field struct {
		name      string
		got, want any
		zero      bool
	}
	fields := []field{
		{"signature_id", got.Alert.SignatureID, w.sid, w.sid == 0},
		{"rev", got.Alert.Rev, w.rev, w.rev == 0},
		{"gid", got.Alert.GID, w.gid, w.gid == 0},
		{"action", got.Alert.Action, w.action, w.action == ""},
		{"signature", got.Alert.Signature, w.signature, w.signature == ""},
		{"category", got.Alert.Category, w.category, w.category == ""},
		{"severity", got.Alert.Severity, w.severity, w.severity == 0},
		{"src_ip", got.SrcIP, w.src, w.src == ""},
		{"dest_ip", got.DestIP, w.dst, w.dst == ""},
		{"src_port", got.SrcPort, w.sport, w.sport == 0},
		{"dest_port", got.DestPort, w.dport, w.dport == 0},
		{"proto", got.Proto, w.proto, w.proto == ""},
		{"pcap_cnt", got.PcapCnt, w.pcapCnt, w.pcapCnt == 0},
		{"direction", got.Direction, w.direction, w.direction == ""},
		{"app_proto", got.AppProto, w.appProto, w.appProto == ""},
	}
	for _, f := range fields {
		if !f.zero && f.got != f.want {
			t.Errorf("alert sid %d: %s = %v, want %v", got.Alert.SignatureID, f.name, f.got, f.want)
		}
	}
}

// streamRules match a content and a pcre in the client's stream.
const streamRules = `alert tcp any any -> any 80 (msg:"LOCAL evil command"; flow:to_server,established; content:"EVIL-COMMAND"; classtype:trojan-activity; sid:1000001; rev:3;)
alert tcp any any -> any 80 (msg:"LOCAL evil token"; flow:to_server,established; pcre:"/token=[0-9]{6};/"; sid:1000002; rev:1;)
`

// TestReplayDetectStream: content and pcre rules see the client's stream, not
// its segments: a match split across two segments alerts once, on the segment
// that completes it; a retransmitted segment does not alert again; a segment out
// of order is inspected alone and the stream resumes once the hole is filled.
func TestReplayDetectStream(t *testing.T) {
	const client, server = "10.0.0.5:40001", "10.0.1.9:80"
	tests := []struct {
		name string
		// build adds the connection's packets and returns the frame each rule
		// (content, pcre) should alert on; 0: no alert wanted.
		build func(k *tcpConn) (contentAt, pcreAt int)
	}{
		{"split across two segments", func(k *tcpConn) (int, int) {
			k.handshake()
			k.send(true, "GET / HTTP/1.1\r\nX: EVIL-COM")
			n := k.send(true, "MAND token=123")
			m := k.send(true, "456;\r\n\r\n")
			return n, m
		}},
		{"retransmitted segment", func(k *tcpConn) (int, int) {
			k.handshake()
			first := k.dataAt(true, 0, "X: EVIL-CO")
			k.c.add(first)
			k.clientSeq += 10
			n := k.send(true, "MMAND token=654321;")
			k.c.add(first) // the first segment again
			k.send(false, "HTTP/1.1 200 OK\r\n\r\n")
			// And the second, after the server's answer.
			k.clientSeq -= uint32(len("MMAND token=654321;"))
			k.send(true, "MMAND token=654321;")
			return n, n
		}},
		{"out of order", func(k *tcpConn) (int, int) {
			k.handshake()
			// The second segment arrives first and is inspected alone; the first
			// fills the hole, and the stream goes on after the second: a match
			// split across the next two segments is seen.
			const first, second = "GET / HTTP/1.1\r\n", "X: EVIL-COMMAND\r\n"
			n := k.c.add(k.dataAt(true, uint32(len(first)), second))
			k.send(true, first)
			k.clientSeq += uint32(len(second))
			k.send(true, "Cookie: token=22")
			m := k.send(true, "2222;\r\n")
			return n, m
		}},
		{"no match", func(k *tcpConn) (int, int) {
			k.handshake()
			k.send(true, "GET /EVIL COMMAND token=12345;")
			return 0, 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture()
			k := newTCPConn(t, c, client, server)
			contentAt, pcreAt := tt.build(k)
			cfg := writeDetectConfig(t, t.TempDir(), streamRules, "")
			r := replayDetect(t, cfg, c.write(t))
			for _, w := range []struct {
				sid, at int
				msg     string
				rev     int
			}{{1000001, contentAt, "LOCAL evil command", 3}, {1000002, pcreAt, "LOCAL evil token", 1}} {
				got := r.bySID(w.sid)
				if w.at == 0 {
					if len(got) != 0 {
						t.Errorf("sid %d: %d alerts, want none", w.sid, len(got))
					}
					continue
				}
				if len(got) != 1 {
					t.Errorf("sid %d: %d alerts, want 1: %+v", w.sid, len(got), got)
					continue
				}
				checkAlert(t, got[0], wantAlert{sid: w.sid, rev: w.rev, gid: 1, action: "allowed", signature: w.msg,
					src: "10.0.0.5", sport: 40001, dst: "10.0.1.9", dport: 80, proto: "TCP",
					pcapCnt: w.at, direction: "to_server"})
			}
			if got := r.bySID(1000001); len(got) == 1 && got[0].Alert.Category != "A Network Trojan was detected" {
				t.Errorf("category %q, want classtype trojan-activity's", got[0].Alert.Category)
			}
			if r.sum.Detect.Rules != 2 || r.sum.Detect.Skipped != 0 {
				t.Errorf("summary detect %+v, want 2 rules, none skipped", *r.sum.Detect)
			}
			if want := uint64(len(r.alerts)); r.sum.Detect.AlertsAllowed != want {
				t.Errorf("summary alerts_allowed %d, EVE has %d alerts", r.sum.Detect.AlertsAllowed, want)
			}
		})
	}
}
