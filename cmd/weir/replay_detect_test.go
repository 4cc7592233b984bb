package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"io"
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
	"golang.org/x/net/dns/dnsmessage"

	"weir/dataplane/detect"
)

// captureStart is when every built capture begins; each packet is 1 ms after the last.
var captureStart = time.Unix(1_700_000_000, 0).UTC()

// capture is a list of frames being built, written to a pcap at the end. Its frames
// are numbered from 1, as pcap_cnt counts them.
type capture struct {
	link   layers.LinkType
	frames [][]byte
	times  []time.Time
	// step is the time between packets; pause is added once, before the next.
	step, pause time.Duration
}

func newCapture() *capture { return &capture{link: layers.LinkTypeEthernet, step: time.Millisecond} }

// add appends a frame and returns its number in the capture.
func (c *capture) add(frame []byte) int {
	ts := captureStart
	if n := len(c.times); n > 0 {
		ts = c.times[n-1].Add(c.step + c.pause)
	}
	c.pause = 0
	c.frames = append(c.frames, frame)
	c.times = append(c.times, ts)
	return len(c.frames)
}

// wait moves the capture's clock forward by d before the next frame.
func (c *capture) wait(d time.Duration) { c.pause += d }

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
	Ether     *struct {
		SrcMAC  string `json:"src_mac"`
		DestMAC string `json:"dest_mac"`
	} `json:"ether"`
	Packet     []byte `json:"packet"` // base64 in EVE
	PacketInfo struct {
		LinkType     int    `json:"linktype"`
		LinkTypeName string `json:"linktype_name"`
	} `json:"packet_info"`
	Alert struct {
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
			const head, rest = "X: EVIL-CO", "MMAND token=654321;"
			first := k.dataAt(true, 0, head)
			k.c.add(first)
			k.clientSeq += uint32(len(head))
			n := k.send(true, rest)
			k.c.add(first) // the first segment again
			k.send(false, "HTTP/1.1 200 OK\r\n\r\n")
			// And the second, after the server's answer.
			k.clientSeq -= uint32(len(rest))
			k.send(true, rest)
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
			for _, a := range r.alerts {
				if a.Ether == nil || a.Ether.SrcMAC != "02:00:00:00:00:01" || a.Ether.DestMAC != "02:00:00:00:00:02" {
					t.Errorf("sid %d: ether %+v, want the frame's MACs", a.Alert.SignatureID, a.Ether)
				}
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

// TestReplayDetectFlowbits: a bit set by the request is seen by the rule on the
// response, in the other direction, and only on its own flow.
func TestReplayDetectFlowbits(t *testing.T) {
	const ruleText = `alert tcp any any -> any 80 (msg:"LOCAL login request"; flow:to_server,established; content:"POST /login"; flowbits:set,local.login; flowbits:noalert; sid:2000001; rev:1;)
alert tcp any 80 -> any any (msg:"LOCAL login accepted"; flow:to_client,established; content:"200 OK"; flowbits:isset,local.login; sid:2000002; rev:4;)
`
	c := newCapture()
	login := newTCPConn(t, c, "10.0.0.5:40001", "10.0.1.9:80")
	login.handshake()
	login.send(true, "POST /login HTTP/1.1\r\n\r\n")
	at := login.send(false, "HTTP/1.1 200 OK\r\n\r\n")
	// Another flow gets the same answer to another request: no bit, no alert.
	other := newTCPConn(t, c, "10.0.0.5:40002", "10.0.1.9:80")
	other.handshake()
	other.send(true, "GET /index.html HTTP/1.1\r\n\r\n")
	other.send(false, "HTTP/1.1 200 OK\r\n\r\n")

	r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, ""), c.write(t))
	if len(r.alerts) != 1 {
		t.Fatalf("%d alerts, want 1 (the login response): %+v", len(r.alerts), r.alerts)
	}
	checkAlert(t, r.alerts[0], wantAlert{sid: 2000002, rev: 4, gid: 1, action: "allowed", signature: "LOCAL login accepted",
		src: "10.0.1.9", sport: 80, dst: "10.0.0.5", dport: 40001, proto: "TCP", pcapCnt: at, direction: "to_client"})
}

// TestReplayDetectThreshold: thresholds tracked by source count each source's
// packets in the rule's window: limit alerts on the first count of them, threshold
// on every count-th, both once on the count-th; the next window starts over.
func TestReplayDetectThreshold(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.5:5000")
	b := netip.MustParseAddrPort("10.0.0.6:5000")
	dst := netip.MustParseAddrPort("10.0.1.9:9999")
	// Source a sends 7 pings, b one, then after the window a 3 more: by packet
	// number, a's are 1-7 and 9-11, b's is 8.
	c := newCapture()
	for range 7 {
		c.add(udpFrame(t, a, dst, []byte("ping")))
	}
	c.add(udpFrame(t, b, dst, []byte("ping")))
	c.wait(61 * time.Second)
	for range 3 {
		c.add(udpFrame(t, a, dst, []byte("ping")))
	}
	capFile := c.write(t)
	tests := []struct {
		threshold string
		want      []int // packets alerted on
	}{
		{"type limit, track by_src, count 2, seconds 60", []int{1, 2, 8, 9, 10}},
		{"type threshold, track by_src, count 3, seconds 60", []int{3, 6, 11}},
		{"type both, track by_src, count 3, seconds 60", []int{3, 11}},
		{"type limit, track by_dst, count 2, seconds 60", []int{1, 2, 9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.threshold, func(t *testing.T) {
			ruleText := `alert udp any any -> any 9999 (msg:"LOCAL ping"; content:"ping"; threshold:` + tt.threshold + `; sid:3000001; rev:1;)` + "\n"
			r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, ""), capFile)
			var got []int
			for _, al := range r.alerts {
				got = append(got, al.PcapCnt)
				src := "10.0.0.5"
				if al.PcapCnt == 8 {
					src = "10.0.0.6"
				}
				checkAlert(t, al, wantAlert{sid: 3000001, action: "allowed", src: src, sport: 5000, dst: "10.0.1.9", dport: 9999, proto: "UDP"})
			}
			if !equalInts(got, tt.want) {
				t.Errorf("alerts on packets %v, want %v", got, tt.want)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReplayDetectPass: a pass rule's match ends inspection of its flow, so a later
// alert-worthy segment of that flow does not alert; the same segment on another
// flow does.
func TestReplayDetectPass(t *testing.T) {
	const ruleText = `pass tcp any any -> any 80 (msg:"LOCAL trusted client"; flow:to_server,established; content:"X-Trusted: yes"; sid:4000001; rev:1;)
alert tcp any any -> any 80 (msg:"LOCAL evil"; flow:to_server,established; content:"EVIL-COMMAND"; sid:4000002; rev:1;)
`
	c := newCapture()
	trusted := newTCPConn(t, c, "10.0.0.5:40001", "10.0.1.9:80")
	trusted.handshake()
	trusted.send(true, "GET / HTTP/1.1\r\nX-Trusted: yes\r\n\r\n")
	trusted.send(true, "EVIL-COMMAND\r\n")
	other := newTCPConn(t, c, "10.0.0.5:40002", "10.0.1.9:80")
	other.handshake()
	other.send(true, "GET / HTTP/1.1\r\n\r\n")
	at := other.send(true, "EVIL-COMMAND\r\n")

	r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, ""), c.write(t))
	if len(r.alerts) != 1 {
		t.Fatalf("%d alerts, want 1 (the untrusted flow's): %+v", len(r.alerts), r.alerts)
	}
	checkAlert(t, r.alerts[0], wantAlert{sid: 4000002, action: "allowed", src: "10.0.0.5", sport: 40002, dport: 80, pcapCnt: at})
}

// dnsQuery is a DNS query message for name, type A.
func dnsQuery(t *testing.T, id uint16, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// clientHello runs a crypto/tls client over net.Pipe and returns its first write:
// the ClientHello record exactly as Go sends it.
func clientHello(t *testing.T, serverName string) []byte {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := tls.Client(client, &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12})
		_ = c.Handshake() // fails once the server end closes
		c.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(server, rec[5:]); err != nil {
		t.Fatal(err)
	}
	server.Close()
	<-done
	return rec
}

// TestReplayDetectAppLayer: dns.query and tls.sni rules alert with the query name
// and the SNI in the alert's dns and tls objects.
func TestReplayDetectAppLayer(t *testing.T) {
	const ruleText = `alert dns any any -> any any (msg:"LOCAL DNS evil"; dns.query; content:"evil.example"; nocase; classtype:bad-unknown; sid:5000001; rev:2;)
alert tls any any -> any any (msg:"LOCAL TLS SNI bad"; flow:established,to_server; tls.sni; content:"bad.example.org"; sid:5000002; rev:1;)
`
	c := newCapture()
	client := netip.MustParseAddrPort("10.0.0.5:33333")
	resolver := netip.MustParseAddrPort("10.0.1.53:53")
	c.add(udpFrame(t, client, resolver, dnsQuery(t, 1, "good.example.com.")))
	dnsAt := c.add(udpFrame(t, client, resolver, dnsQuery(t, 2, "www.Evil.Example.com.")))
	tlsConn := newTCPConn(t, c, "10.0.0.5:40443", "10.0.1.44:443")
	tlsConn.handshake()
	tlsAt := tlsConn.send(true, string(clientHello(t, "bad.example.org")))
	other := newTCPConn(t, c, "10.0.0.5:40444", "10.0.1.44:443")
	other.handshake()
	other.send(true, string(clientHello(t, "good.example.org")))

	r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, ""), c.write(t))
	if len(r.alerts) != 2 {
		t.Fatalf("%d alerts, want 2: %+v", len(r.alerts), r.alerts)
	}
	dns := r.bySID(5000001)
	if len(dns) != 1 {
		t.Fatalf("%d DNS alerts, want 1", len(dns))
	}
	checkAlert(t, dns[0], wantAlert{sid: 5000001, rev: 2, signature: "LOCAL DNS evil", category: "Potentially Bad Traffic",
		src: "10.0.0.5", sport: 33333, dst: "10.0.1.53", dport: 53, proto: "UDP", pcapCnt: dnsAt, appProto: "dns"})
	if q := dns[0].DNS.Queries; len(q) != 1 || q[0].RRName != "www.Evil.Example.com" || q[0].RRType != "A" {
		t.Errorf("dns.queries %+v, want one: www.Evil.Example.com, A", q)
	}
	sni := r.bySID(5000002)
	if len(sni) != 1 {
		t.Fatalf("%d TLS alerts, want 1", len(sni))
	}
	checkAlert(t, sni[0], wantAlert{sid: 5000002, signature: "LOCAL TLS SNI bad",
		src: "10.0.0.5", sport: 40443, dst: "10.0.1.44", dport: 443, proto: "TCP", pcapCnt: tlsAt, appProto: "tls", direction: "to_server"})
	if sni[0].TLS.SNI != "bad.example.org" {
		t.Errorf("tls.sni %q, want bad.example.org", sni[0].TLS.SNI)
	}
}

// TestReplayDetectIntel: an IP list alerts on a flow to a listed address (and a
// listed network); a domain list on a DNS query for a listed name or a name under it.
func TestReplayDetectIntel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad-ips.txt"), []byte("# known bad\n203.0.113.7\n198.51.100.0/24 # a whole net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad-domains.txt"), []byte("malware.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeDetectConfig(t, dir, "", `  intel:
    - {path: bad-ips.txt, type: ip, category: Botnet C2}
    - {path: bad-domains.txt, type: domain, category: Malware domain}
`)
	c := newCapture()
	client := netip.MustParseAddrPort("10.0.0.5:33333")
	toHost := newTCPConn(t, c, "10.0.0.5:40001", "203.0.113.7:443")
	hostAt := c.add(toHost.segment(true, toHost.clientSeq, 0, true, false, false, nil))
	netAt := c.add(udpFrame(t, client, netip.MustParseAddrPort("198.51.100.20:123"), []byte("ntp")))
	c.add(udpFrame(t, client, netip.MustParseAddrPort("192.0.2.1:123"), []byte("ntp"))) // not listed
	resolver := netip.MustParseAddrPort("10.0.1.53:53")
	domainAt := c.add(udpFrame(t, netip.MustParseAddrPort("10.0.0.5:33334"), resolver, dnsQuery(t, 7, "cdn.malware.test.")))
	c.add(udpFrame(t, netip.MustParseAddrPort("10.0.0.5:33335"), resolver, dnsQuery(t, 8, "notmalware.test.")))

	r := replayDetect(t, cfg, c.write(t))
	ips := r.bySID(detect.SIDIntelBase)
	if len(ips) != 2 {
		t.Fatalf("%d IP-list alerts, want 2: %+v", len(ips), r.alerts)
	}
	checkAlert(t, ips[0], wantAlert{gid: 1, action: "allowed", category: "Botnet C2",
		src: "10.0.0.5", sport: 40001, dst: "203.0.113.7", dport: 443, proto: "TCP", pcapCnt: hostAt})
	checkAlert(t, ips[1], wantAlert{category: "Botnet C2", dst: "198.51.100.20", dport: 123, proto: "UDP", pcapCnt: netAt})
	domains := r.bySID(detect.SIDIntelBase + 1)
	if len(domains) != 1 {
		t.Fatalf("%d domain-list alerts, want 1: %+v", len(domains), r.alerts)
	}
	checkAlert(t, domains[0], wantAlert{action: "allowed", category: "Malware domain", dst: "10.0.1.53", dport: 53, pcapCnt: domainAt})
	if q := domains[0].DNS.Queries; len(q) != 1 || q[0].RRName != "cdn.malware.test" {
		t.Errorf("dns.queries %+v, want cdn.malware.test", q)
	}
	for _, a := range r.alerts {
		if !strings.HasPrefix(a.Alert.Signature, "WEIR INTEL ") {
			t.Errorf("signature %q, want WEIR INTEL ...", a.Alert.Signature)
		}
	}
	if len(r.alerts) != 3 {
		t.Errorf("%d alerts, want 3", len(r.alerts))
	}
}

// synFrame is a SYN from src to dst.
func synFrame(t *testing.T, src, dst netip.AddrPort) []byte {
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, SYN: true, Window: 65535}
	return ipFrame(t, true, src.Addr(), dst.Addr(), tcp, nil)
}

// TestReplayDetectPortScan: one source sending SYNs to 100 ports of one host
// raises weir's port-scan alert once, on the SYN that reaches the threshold; a
// second scan within the repeat interval raises none, a third after it one more.
func TestReplayDetectPortScan(t *testing.T) {
	cfg := writeDetectConfig(t, t.TempDir(), "", "  portscan: {ports: 50, window: 60s, repeat: 300s}\n")
	scanner := netip.MustParseAddr("10.0.0.66")
	target := netip.MustParseAddr("10.0.1.9")
	c := newCapture()
	scan := func(sport uint16) (fiftieth int) {
		for p := range uint16(100) {
			n := c.add(synFrame(t, netip.AddrPortFrom(scanner, sport), netip.AddrPortFrom(target, 1+p)))
			if p == 49 {
				fiftieth = n
			}
		}
		return fiftieth
	}
	first := scan(50000)
	c.wait(2 * time.Minute) // past the window, within the repeat interval
	scan(50001)
	c.wait(4 * time.Minute) // past the repeat interval
	third := scan(50002)
	// One host with few ports is no scan.
	for p := range uint16(10) {
		c.add(synFrame(t, netip.MustParseAddrPort("10.0.0.7:40000"), netip.AddrPortFrom(target, 1+p)))
	}

	r := replayDetect(t, cfg, c.write(t))
	got := r.bySID(detect.SIDPortScanPorts)
	if len(got) != 2 || len(r.alerts) != 2 {
		t.Fatalf("%d port-scan alerts (%d alerts), want 2: %+v", len(got), len(r.alerts), r.alerts)
	}
	for i, at := range []int{first, third} {
		checkAlert(t, got[i], wantAlert{sid: detect.SIDPortScanPorts, gid: 1, rev: 1, action: "allowed",
			signature: "WEIR SCAN port scan: one source, many destination ports", category: "Attempted Information Leak",
			severity: 2, src: "10.0.0.66", dst: "10.0.1.9", proto: "TCP"})
		// Ports are counted in a sketch (with a per-run hash seed): the alert comes
		// near the 50th port, not exactly on it.
		if got[i].PcapCnt < at-10 || got[i].PcapCnt > at+10 {
			t.Errorf("port-scan alert %d on packet %d, want within 10 of %d (the 50th port)", i, got[i].PcapCnt, at)
		}
	}
}

// TestReplayDetectSYNFlood: many SYNs to one destination without handshakes
// raise weir's SYN-flood alert once within the repeat interval; as many
// connections that complete their handshakes raise none.
func TestReplayDetectSYNFlood(t *testing.T) {
	cfg := writeDetectConfig(t, t.TempDir(), "", "  synflood: {half_open: 100, window: 10s, repeat: 60s}\n")
	victim := netip.MustParseAddrPort("10.0.1.9:80")
	c := newCapture()
	flood := func(first byte) (hundredth int) {
		for i := range 300 {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, first, byte(i)}), uint16(10000+i))
			n := c.add(synFrame(t, src, victim))
			if i == 99 {
				hundredth = n
			}
		}
		return hundredth
	}
	// Completed handshakes to another server: no flood.
	for i := range 300 {
		k := newTCPConn(t, c, netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 17, 0, byte(i)}), uint16(10000+i)).String(), "10.0.1.10:80")
		k.handshake()
	}
	first := flood(1)
	c.wait(20 * time.Second) // past the window, within the repeat interval
	flood(2)
	c.wait(time.Minute)
	third := flood(3)

	r := replayDetect(t, cfg, c.write(t))
	got := r.bySID(detect.SIDSYNFlood)
	if len(got) != 2 || len(r.alerts) != 2 {
		t.Fatalf("%d SYN-flood alerts (%d alerts), want 2: %+v", len(got), len(r.alerts), r.alerts)
	}
	for i, at := range []int{first, third} {
		checkAlert(t, got[i], wantAlert{sid: detect.SIDSYNFlood, gid: 1, rev: 1, action: "allowed",
			signature: "WEIR DOS SYN flood: many half-open connections to one destination", category: "Attempted Denial of Service",
			severity: 2, dst: "10.0.1.9", dport: 80, proto: "TCP", pcapCnt: at})
	}
}

// TestReplayDetectSimulateIPS: with -simulate-ips a drop rule blocks its flow: the
// alert says blocked, the flow's later packets are dropped (ips_drop), another
// flow is untouched. Without the flag the same capture only alerts (allowed).
func TestReplayDetectSimulateIPS(t *testing.T) {
	const ruleText = `drop tcp any any -> any 80 (msg:"LOCAL attack"; flow:to_server,established; content:"ATTACK"; sid:6000001; rev:1;)
`
	c := newCapture()
	bad := newTCPConn(t, c, "10.0.0.5:40001", "10.0.1.9:80")
	bad.handshake()
	at := bad.send(true, "GET /ATTACK HTTP/1.1\r\n\r\n")
	bad.send(false, "HTTP/1.1 200 OK\r\n\r\n")
	bad.send(true, "more")
	bad.send(true, "and more")
	good := newTCPConn(t, c, "10.0.0.5:40002", "10.0.1.9:80")
	good.handshake()
	good.send(true, "GET / HTTP/1.1\r\n\r\n")
	good.send(false, "HTTP/1.1 200 OK\r\n\r\n")
	capFile := c.write(t)
	cfg := writeDetectConfig(t, t.TempDir(), ruleText, "  mode: ips\n")

	tests := []struct {
		name           string
		flags          []string
		action         string
		allowed, drops uint64 // allow and ips_drop packets
		blockedFlows   uint64
	}{
		// The matching packet and the three after it are dropped.
		{"simulate-ips", []string{"-simulate-ips"}, "blocked", 12 - 4, 4, 1},
		{"ids", nil, "allowed", 12, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replayDetect(t, cfg, capFile, tt.flags...)
			if len(r.alerts) != 1 {
				t.Fatalf("%d alerts, want 1: %+v", len(r.alerts), r.alerts)
			}
			checkAlert(t, r.alerts[0], wantAlert{sid: 6000001, action: tt.action, signature: "LOCAL attack",
				src: "10.0.0.5", sport: 40001, dst: "10.0.1.9", dport: 80, pcapCnt: at})
			if a := r.sum.Actions; a["allow"] != tt.allowed || a["ips_drop"] != tt.drops {
				t.Errorf("actions %v, want allow %d, ips_drop %d", a, tt.allowed, tt.drops)
			}
			d := r.sum.Detect
			blocked, allowed := uint64(0), uint64(1)
			if tt.action == "blocked" {
				blocked, allowed = 1, 0
			}
			if d.BlockedFlows != tt.blockedFlows || d.AlertsBlocked != blocked || d.AlertsAllowed != allowed {
				t.Errorf("detect summary %+v, want blocked_flows %d, alerts blocked %d allowed %d", *d, tt.blockedFlows, blocked, allowed)
			}
		})
	}
}

// TestReplayDetectPcapCntIPv6: an alert's pcap_cnt is the packet's number in the
// capture, and IPv6 addresses are written in full, as Suricata writes them.
func TestReplayDetectPcapCntIPv6(t *testing.T) {
	const ruleText = `alert udp any any -> any 7777 (msg:"LOCAL marker"; content:"marker"; sid:7000001; rev:1;)
alert tcp any any -> any 80 (msg:"LOCAL v6 stream"; flow:to_server,established; content:"EVIL-COMMAND"; sid:7000002; rev:1;)
`
	src := netip.MustParseAddrPort("[2001:db8::5]:5000")
	dst := netip.MustParseAddrPort("[2001:db8:0:1::9]:7777")
	c := newCapture()
	var want []int
	for i := range 20 {
		payload := "nothing"
		if i%7 == 3 {
			payload = "marker"
		}
		n := c.add(udpFrame(t, src, dst, []byte(payload)))
		if payload == "marker" {
			want = append(want, n)
		}
	}
	k := newTCPConn(t, c, "[fe80::1]:40001", "[2001:db8::80]:80")
	k.handshake()
	streamAt := k.send(true, "EVIL-COMMAND")

	r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, ""), c.write(t))
	var got []int
	for _, a := range r.bySID(7000001) {
		got = append(got, a.PcapCnt)
		checkAlert(t, a, wantAlert{src: "2001:0db8:0000:0000:0000:0000:0000:0005", dst: "2001:0db8:0000:0001:0000:0000:0000:0009",
			sport: 5000, dport: 7777, proto: "UDP"})
	}
	if !equalInts(got, want) {
		t.Errorf("alerts on packets %v, want %v", got, want)
	}
	s := r.bySID(7000002)
	if len(s) != 1 {
		t.Fatalf("%d stream alerts, want 1", len(s))
	}
	checkAlert(t, s[0], wantAlert{src: fullIPv6("fe80::1"), dst: fullIPv6("2001:db8::80"), sport: 40001, dport: 80, pcapCnt: streamAt})
	if s[0].SrcIP != "fe80:0000:0000:0000:0000:0000:0000:0001" {
		t.Errorf("fullIPv6 disagrees with the form written out: %s", s[0].SrcIP)
	}
}

// checkConfig runs weir check-config on path.
func checkConfig(path string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run([]string{"check-config", path}, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCheckConfigRules: a rule with a syntax error fails check-config with the rule
// file's FILE:LINE; rules with unsupported keywords are listed (file, line, sid,
// keyword) and skipped, and the configuration is still valid; a rules glob that
// matches nothing is an error.
func TestCheckConfigRules(t *testing.T) {
	good := `# local rules
alert tcp any any -> any 80 (msg:"LOCAL one"; content:"one"; sid:1; rev:1;)

alert udp any any -> any 53 (msg:"LOCAL two"; content:"two"; sid:2; rev:1;)
`
	t.Run("syntax error", func(t *testing.T) {
		dir := t.TempDir()
		cfg := writeDetectConfig(t, dir, good+`alert tcp any any -> any 80 (msg:"LOCAL broken"; content:"x"; sid:3; rev:1;
`, "")
		code, stdout, stderr := checkConfig(cfg)
		if code == 0 {
			t.Fatalf("check-config passed a broken rule: %s", stdout)
		}
		want := filepath.Join(dir, "rules", "local.rules") + ":5: "
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q, want it to name %s", stderr, want)
		}
	})
	t.Run("unsupported keywords", func(t *testing.T) {
		dir := t.TempDir()
		cfg := writeDetectConfig(t, dir, good+`alert tcp any any -> any 80 (msg:"LOCAL uri"; http.uri; content:"/admin"; sid:3; rev:1;)
alert tcp any any -> any 80 (msg:"LOCAL lua"; lua:check.lua; sid:4; rev:1;)
`, "")
		code, stdout, stderr := checkConfig(cfg)
		if code != 0 {
			t.Fatalf("check-config exit %d: %s", code, stderr)
		}
		file := filepath.Join(dir, "rules", "local.rules")
		for _, w := range []string{
			file + `:5: sid 3: skipped: unsupported keyword "http.uri"`,
			file + `:6: sid 4: skipped: unsupported keyword "lua"`,
			cfg + ": 2 rules loaded, 2 skipped, 0 threat-intel entries",
			cfg + ": ok",
		} {
			if !strings.Contains(stdout, w+"\n") {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
	})
	t.Run("glob matches nothing", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "weir.yaml")
		if err := os.WriteFile(cfg, []byte("detect:\n  rules: [missing/*.rules]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := checkConfig(cfg)
		if code == 0 {
			t.Fatalf("check-config passed a glob matching nothing: %s", stdout)
		}
		if want := cfg + ":2: detect.rules: " + filepath.Join(dir, "missing", "*.rules") + " matches no file\n"; stderr != want {
			t.Errorf("stderr %q, want it to say %q", stderr, want)
		}
	})
}

// TestReplayDetectLinkTypes: replay reads PPP and BSD loopback (NULL) captures, and
// detection sees their packets.
func TestReplayDetectLinkTypes(t *testing.T) {
	const ruleText = `alert udp any any -> any 7777 (msg:"LOCAL marker"; content:"marker"; sid:7000001; rev:1;)
`
	src, dst := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.1.9")
	tests := []struct {
		name   string
		link   layers.LinkType
		header []byte
	}{
		{"PPP", layers.LinkTypePPP, []byte{0xff, 0x03, 0x00, 0x21}},   // HDLC address and control, protocol IPv4
		{"PPP without HDLC", layers.LinkTypePPP, []byte{0x00, 0x21}},  // protocol IPv4
		{"PPP compressed protocol", layers.LinkTypePPP, []byte{0x21}}, // protocol field compression
		{"NULL", layers.LinkTypeNull, []byte{2, 0, 0, 0}},             // AF_INET, host order (little endian)
		{"NULL big endian", layers.LinkTypeNull, []byte{0, 0, 0, 2}},  // AF_INET, written on a big-endian host
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture()
			c.link = tt.link
			var ip []byte
			for _, payload := range []string{"first", "a marker"} {
				ip = ipFrame(t, false, src, dst, &layers.UDP{SrcPort: 5000, DstPort: 7777}, []byte(payload))
				c.add(append(append([]byte(nil), tt.header...), ip...))
			}
			r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, "  alert_packet: true\n"), c.write(t))
			if r.sum.Unreadable != 0 || r.sum.Actions["allow"] != 2 {
				t.Errorf("summary: %d unreadable, actions %v: want both packets read and allowed", r.sum.Unreadable, r.sum.Actions)
			}
			if len(r.alerts) != 1 {
				t.Fatalf("%d alerts, want 1", len(r.alerts))
			}
			checkAlert(t, r.alerts[0], wantAlert{sid: 7000001, src: "10.0.0.5", sport: 5000, dst: "10.0.1.9", dport: 7777, proto: "UDP", pcapCnt: 2})
			if r.alerts[0].PktSrc != "wire/pcap" || r.alerts[0].Tunnel != nil {
				t.Errorf("pkt_src %q, tunnel %v: want wire/pcap, none", r.alerts[0].PktSrc, r.alerts[0].Tunnel)
			}
			// No Ethernet header: no ether object, and the packet is written as raw IP.
			if a := r.alerts[0]; a.Ether != nil || !bytes.Equal(a.Packet, ip) || a.PacketInfo.LinkType != 101 || a.PacketInfo.LinkTypeName != "RAW" {
				t.Errorf("ether %+v, packet %x, packet_info %+v: want no ether, the IP packet %x, linktype 101 RAW", a.Ether, a.Packet, a.PacketInfo, ip)
			}
		})
	}
}

// TestReplayDetectIntelDrop: an IP list with action drop blocks the flow to a
// listed address under -simulate-ips (ips mode), and only alerts without it.
func TestReplayDetectIntelDrop(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "block.txt"), []byte("203.0.113.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeDetectConfig(t, dir, "", "  mode: ips\n  intel:\n    - {path: block.txt, type: ip, action: drop}\n")
	c := newCapture()
	k := newTCPConn(t, c, "10.0.0.5:40001", "203.0.113.7:443")
	k.handshake()
	k.send(true, "hello")
	other := newTCPConn(t, c, "10.0.0.5:40002", "192.0.2.80:443")
	other.handshake()
	capFile := c.write(t)
	tests := []struct {
		flags          []string
		action         string
		allowed, drops uint64
		blockedFlows   uint64
	}{
		{[]string{"-simulate-ips"}, "blocked", 3, 4, 1}, // the SYN alerts and is dropped, and all after it
		{nil, "allowed", 7, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			r := replayDetect(t, cfg, capFile, tt.flags...)
			if len(r.alerts) != 1 {
				t.Fatalf("%d alerts, want 1: %+v", len(r.alerts), r.alerts)
			}
			checkAlert(t, r.alerts[0], wantAlert{sid: detect.SIDIntelBase, action: tt.action, category: "Threat intel",
				src: "10.0.0.5", sport: 40001, dst: "203.0.113.7", dport: 443, pcapCnt: 1})
			if a := r.sum.Actions; a["allow"] != tt.allowed || a["ips_drop"] != tt.drops {
				t.Errorf("actions %v, want allow %d, ips_drop %d", a, tt.allowed, tt.drops)
			}
			if r.sum.Detect.BlockedFlows != tt.blockedFlows {
				t.Errorf("blocked_flows %d, want %d", r.sum.Detect.BlockedFlows, tt.blockedFlows)
			}
		})
	}
}

// tunnelFrame is an Ethernet frame of an IPv4 packet from 192.0.2.1 to 192.0.2.2
// carrying, in the given way, an inner IP packet with a UDP datagram.
func tunnelFrame(t *testing.T, outerProto layers.IPProtocol, innerSrc, innerDst netip.AddrPort, payload string) []byte {
	t.Helper()
	outer := &layers.IPv4{Version: 4, TTL: 64, Protocol: outerProto, SrcIP: []byte{192, 0, 2, 1}, DstIP: []byte{192, 0, 2, 2}}
	udp := &layers.UDP{SrcPort: layers.UDPPort(innerSrc.Port()), DstPort: layers.UDPPort(innerDst.Port())}
	var inner gopacket.SerializableLayer
	ethType := layers.EthernetTypeIPv4
	if innerSrc.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: innerSrc.Addr().AsSlice(), DstIP: innerDst.Addr().AsSlice()}
		udp.SetNetworkLayerForChecksum(ip)
		inner = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: innerSrc.Addr().AsSlice(), DstIP: innerDst.Addr().AsSlice()}
		udp.SetNetworkLayerForChecksum(ip)
		inner, ethType = ip, layers.EthernetTypeIPv6
	}
	ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: clientMAC, DstMAC: serverMAC, EthernetType: layers.EthernetTypeIPv4}, outer}
	if outerProto == layers.IPProtocolGRE {
		ls = append(ls, &layers.GRE{Protocol: ethType})
	}
	ls = append(ls, inner, udp, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReplayDetectTunnels: a rule on the inner packet of a GRE or IP-in-IP tunnel
// (its addresses and content) alerts, and the alert carries the tunnel object.
func TestReplayDetectTunnels(t *testing.T) {
	const ruleText = `alert udp 10.9.0.1 any -> 10.9.0.2 7777 (msg:"LOCAL tunnelled v4"; content:"tunnelled-marker"; sid:8000001; rev:1;)
alert udp 2001:db8:9::1 any -> 2001:db8:9::2 7777 (msg:"LOCAL tunnelled v6"; content:"tunnelled-marker"; sid:8000002; rev:1;)
`
	v4src, v4dst := netip.MustParseAddrPort("10.9.0.1:5000"), netip.MustParseAddrPort("10.9.0.2:7777")
	v6src, v6dst := netip.MustParseAddrPort("[2001:db8:9::1]:5000"), netip.MustParseAddrPort("[2001:db8:9::2]:7777")
	tests := []struct {
		name       string
		outerProto layers.IPProtocol
		src, dst   netip.AddrPort
		sid        int
		proto      string // tunnel.proto
		pktSrc     string
	}{
		{"GRE", layers.IPProtocolGRE, v4src, v4dst, 8000001, "GRE", "gre tunnel"},
		{"GRE IPv6", layers.IPProtocolGRE, v6src, v6dst, 8000002, "GRE", "gre tunnel"},
		{"IPv4 in IPv4", layers.IPProtocolIPv4, v4src, v4dst, 8000001, "IPv4", "ipv4 tunnel"},
		{"IPv6 in IPv4", layers.IPProtocolIPv6, v6src, v6dst, 8000002, "IPv6", "ipv4 tunnel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture()
			c.add(tunnelFrame(t, tt.outerProto, tt.src, tt.dst, "nothing to see"))
			at := c.add(tunnelFrame(t, tt.outerProto, tt.src, tt.dst, "a tunnelled-marker"))
			r := replayDetect(t, writeDetectConfig(t, t.TempDir(), ruleText, ""), c.write(t))
			if len(r.alerts) != 1 {
				t.Fatalf("%d alerts, want 1: %+v\n%s", len(r.alerts), r.alerts, r.stdout)
			}
			a := r.alerts[0]
			src, dst := tt.src.Addr().String(), tt.dst.Addr().String()
			if tt.src.Addr().Is6() {
				src, dst = fullIPv6(src), fullIPv6(dst)
			}
			checkAlert(t, a, wantAlert{sid: tt.sid, action: "allowed", src: src, sport: 5000, dst: dst, dport: 7777, proto: "UDP", pcapCnt: at})
			if a.PktSrc != tt.pktSrc {
				t.Errorf("pkt_src %q, want %q", a.PktSrc, tt.pktSrc)
			}
			tun := a.Tunnel
			if tun == nil {
				t.Fatal("no tunnel object")
			}
			if tun.SrcIP != "192.0.2.1" || tun.DestIP != "192.0.2.2" || tun.SrcPort != 0 || tun.DestPort != 0 ||
				tun.Proto != tt.proto || tun.Depth != 1 || tun.PcapCnt != at || tun.PktSrc != "wire/pcap" {
				t.Errorf("tunnel %+v, want 192.0.2.1 -> 192.0.2.2, no ports, %s, depth 1, pcap_cnt %d, wire/pcap", *tun, tt.proto, at)
			}
		})
	}
}
