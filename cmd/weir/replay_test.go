package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// peerDir holds third-party captures (see PROVENANCE.md there), one of them a real
// AWS Traffic Mirroring capture.
var peerDir = filepath.Join("..", "..", "..", "shared", "testdata", "peer")

func peerCaptures(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(peerDir, "*.pcap"))
	if len(files) == 0 {
		t.Fatalf("no peer captures in %s: the shared folder must sit beside the repository (as in CI)", peerDir)
	}
	return files
}

// convKey is a flow in both directions: proto and the two endpoints, ordered.
type convKey struct {
	proto  string
	lo, hi string
}

// conv is one flow's packet counts, oriented by its first packet.
type conv struct {
	client             string
	toServer, toClient int
	vxlan, geneve      bool
}

// compactAddr is an EVE address, IPv6 written in full as Suricata writes it, in the
// compressed form tshark and netip write, to compare them.
func compactAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

func makeConvKey(proto, src, dst string) (convKey, bool) {
	if src <= dst {
		return convKey{proto, src, dst}, true
	}
	return convKey{proto, dst, src}, false
}

// tsharkConversations reads a capture with tshark and counts the innermost IP
// flows: for each frame, the last IP header and what follows it.
func tsharkConversations(t *testing.T, file string) map[convKey]*conv {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "aggregator=;",
		"-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "icmp.ident", "-e", "icmpv6.echo.identifier").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", file, err)
	}
	last := func(s string) string { return s[strings.LastIndexByte(s, ';')+1:] }
	convs := map[convKey]*conv{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		protos := strings.Split(f[0], ":")
		// The innermost network layer decides.
		inner := -1
		for i, p := range protos {
			if p == "ip" || p == "ipv6" {
				inner = i
			}
		}
		if inner < 0 {
			continue // ARP and other non-IP frames make no flow
		}
		if tunnelled := strings.Join(protos[inner+1:], ":"); strings.Contains(tunnelled, "vxlan") || strings.Contains(tunnelled, "geneve") {
			continue // a tunnel carrying a non-IP frame (ARP): no inner flow
		}
		var src, dst string
		if protos[inner] == "ip" {
			src, dst = last(f[1]), last(f[2])
		} else {
			src, dst = last(f[3]), last(f[4])
		}
		var proto, sport, dport string
		switch rest := strings.Join(protos[inner+1:], ":"); {
		case strings.HasPrefix(rest, "tcp"):
			proto, sport, dport = "TCP", last(f[5]), last(f[6])
		case strings.HasPrefix(rest, "udp"):
			proto, sport, dport = "UDP", last(f[7]), last(f[8])
		case strings.HasPrefix(rest, "icmpv6"):
			proto, sport, dport = "IPv6-ICMP", last(f[10]), last(f[10])
		case strings.HasPrefix(rest, "icmp"):
			proto, sport, dport = "ICMP", last(f[9]), last(f[9])
		default:
			continue
		}
		k, _ := makeConvKey(proto, src+"/"+sport, dst+"/"+dport)
		c := convs[k]
		if c == nil {
			c = &conv{client: src + "/" + sport}
			convs[k] = c
		}
		if src+"/"+sport == c.client {
			c.toServer++
		} else {
			c.toClient++
		}
		c.vxlan = c.vxlan || strings.Contains(f[0], "vxlan")
		c.geneve = c.geneve || strings.Contains(f[0], "geneve")
	}
	return convs
}

// eveConversations reads weir's EVE flow records.
func eveConversations(t *testing.T, path string) map[convKey]*conv {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	convs := map[convKey]*conv{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var ev struct {
			EventType string `json:"event_type"`
			SrcIP     string `json:"src_ip"`
			DestIP    string `json:"dest_ip"`
			SrcPort   *int   `json:"src_port"`
			DestPort  *int   `json:"dest_port"`
			Proto     string `json:"proto"`
			Flow      struct {
				PktsToServer int `json:"pkts_toserver"`
				PktsToClient int `json:"pkts_toclient"`
			} `json:"flow"`
			Weir struct {
				Encap string `json:"encap"`
			} `json:"weir"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("EVE: %v: %s", err, sc.Text())
		}
		if ev.EventType != "flow" {
			continue
		}
		ev.SrcIP, ev.DestIP = compactAddr(ev.SrcIP), compactAddr(ev.DestIP)
		port := func(p *int) string {
			if p == nil {
				return ""
			}
			return fmt.Sprint(*p)
		}
		src, dst := ev.SrcIP+"/"+port(ev.SrcPort), ev.DestIP+"/"+port(ev.DestPort)
		k, _ := makeConvKey(ev.Proto, src, dst)
		if convs[k] != nil {
			t.Errorf("two EVE flow records for %v", k)
		}
		convs[k] = &conv{client: src, toServer: ev.Flow.PktsToServer, toClient: ev.Flow.PktsToClient,
			vxlan: ev.Weir.Encap == "vxlan", geneve: ev.Weir.Encap == "geneve"}
	}
	return convs
}

// TestReplayPeerCaptures runs every peer capture through weir replay and checks each
// inner flow and its packet count in each direction against what tshark reads from
// the same file.
func TestReplayPeerCaptures(t *testing.T) {
	requireTool(t, "tshark")
	for _, file := range peerCaptures(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "eve.json")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"replay", "-eve", out, file}, &stdout, &stderr); code != 0 {
				t.Fatalf("replay exit %d: %s", code, stderr.String())
			}
			var sum replaySummary
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("summary: %v\n%s", err, stdout.String())
			}
			want := tsharkConversations(t, file)
			got := eveConversations(t, out)
			// EVE writes ICMP without ports; compare ICMP flows by address only.
			for k, c := range want {
				if k.proto == "ICMP" || k.proto == "IPv6-ICMP" {
					delete(want, k)
					lo, hi := strings.Split(k.lo, "/")[0]+"/", strings.Split(k.hi, "/")[0]+"/"
					nk, _ := makeConvKey(k.proto, lo, hi)
					c.client = strings.Split(c.client, "/")[0] + "/"
					want[nk] = c
				}
			}
			for k, w := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("flow %v (tshark: %d/%d packets) missing from EVE", k, w.toServer, w.toClient)
					continue
				}
				if g.client != w.client || g.toServer != w.toServer || g.toClient != w.toClient {
					t.Errorf("flow %v: weir client %s %d>/%d<, tshark client %s %d>/%d<",
						k, g.client, g.toServer, g.toClient, w.client, w.toServer, w.toClient)
				}
				if w.vxlan && !g.vxlan {
					t.Errorf("flow %v is mirrored (VXLAN) but EVE does not say so", k)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("EVE has flow %v that tshark does not see", k)
				}
			}
			if sum.Flows != uint64(len(got)) {
				t.Errorf("summary says %d flows, EVE has %d", sum.Flows, len(got))
			}
			if len(sum.DecodeErrors) != 0 {
				t.Errorf("decode errors on a good capture: %v", sum.DecodeErrors)
			}
			t.Logf("%d flows; packets %v; actions %v", len(got), sum.Packets, sum.Actions)
		})
	}
}

// TestReplayVXLANReservedBits: the capture whose VXLAN reserved fields are set is
// accepted (real senders set them).
func TestReplayVXLANReservedBits(t *testing.T) {
	file := filepath.Join(peerDir, "vxlan-nonzero-reserved.pcap")
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"replay", "-eve", filepath.Join(t.TempDir(), "eve.json"), file}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay: %s", stderr.String())
	}
	var sum replaySummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Packets["vxlan"] == 0 || sum.Actions["allow"] != sum.Packets["vxlan"] {
		t.Errorf("packets %v actions %v: every VXLAN packet should be accepted", sum.Packets, sum.Actions)
	}
}

// TestReplayLosesNoRecord replays 100,000 one-packet flows through a table of 1,000
// (so most records come from evictions, on the packet path) with a flow log: every
// flow must reach the EVE log and the flow log, none dropped for a full queue.
func TestReplayLosesNoRecord(t *testing.T) {
	dir := t.TempDir()
	capFile := filepath.Join(dir, "many.pcap")
	f, err := os.Create(capFile)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	const flows = 100000
	frame := make([]byte, 14+28)
	frame[12], frame[13] = 0x08, 0x00
	ip := frame[14:]
	ip[0], ip[2], ip[3], ip[8], ip[9] = 0x45, 0, 28, 64, 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 1, 0, 1})
	ip[24], ip[25] = 0, 8
	ts := time.Unix(1_700_000_000, 0)
	for i := range flows {
		binary.BigEndian.PutUint16(ip[20:22], uint16(1024+i%60000))
		binary.BigEndian.PutUint16(ip[22:24], uint16(1+i/60000))
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(frame), Length: len(frame)}
		if err := w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// A table of 1,000 ends most flows by eviction, on the packet path; one of
	// 200,000 ends them all at once in the flush at the end.
	for _, max := range []int{1000, 200000} {
		t.Run(fmt.Sprint("max=", max), func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "weir.yaml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf("flows: {max: %d}\nmirror: {listen: \"\"}\n", max)), 0o644); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			eve, flog := filepath.Join(out, "eve.json"), filepath.Join(out, "flows.log")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"replay", "-config", cfg, "-eve", eve, "-flowlog", flog, capFile}, &stdout, &stderr); code != 0 {
				t.Fatalf("replay exit %d: %s\n%s", code, stderr.String(), stdout.String())
			}
			for _, c := range []struct {
				path string
				want int
			}{{eve, flows}, {flog, flows + 1 /* header */}} {
				data, err := os.ReadFile(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if n := bytes.Count(data, []byte("\n")); n != c.want {
					t.Errorf("%s has %d lines, want %d", filepath.Base(c.path), n, c.want)
				}
			}
		})
	}
}

// TestReplayHugeRecord: a pcap record header that claims a 4 GiB packet fails the
// replay with a clear error, and nothing near that size is allocated.
func TestReplayHugeRecord(t *testing.T) {
	dir := t.TempDir()
	capFile := filepath.Join(dir, "huge.pcap")
	var f bytes.Buffer
	w := pcapgo.NewWriter(&f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr[0:], 1_700_000_000)
	binary.LittleEndian.PutUint32(hdr[8:], 0xffffffff)
	binary.LittleEndian.PutUint32(hdr[12:], 0xffffffff)
	f.Write(hdr)
	f.Write(make([]byte, 64))
	if err := os.WriteFile(capFile, f.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Small flow tables, so that what the engine allocates does not hide the record.
	cfg := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(cfg, []byte("flows: {max: 1000}\nmirror: {listen: \"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "-config", cfg, "-eve", filepath.Join(dir, "eve.json"), capFile}, &stdout, &stderr)
	runtime.ReadMemStats(&after)
	if code == 0 {
		t.Fatalf("replay succeeded: %s", stdout.String())
	}
	if want := capFile + ": packet 1: captured length 4294967295 exceeds the maximum 262144"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	// The engine's tables and queues take some 20 MB; the record claimed 4 GB.
	// (pcapin's own test holds the reading alone to 10 MB.)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("replay allocated %d MB", d>>20)
	}
}

// TestReplayLinkTypes replays the same VXLAN datagram captured on each link type
// replay reads, in one pcapng, and a frame of an unknown link type.
func TestReplayLinkTypes(t *testing.T) {
	inner := gopacket.NewSerializeBuffer()
	innerIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 0, 1, 5}, DstIP: []byte{10, 0, 2, 9}}
	innerUDP := &layers.UDP{SrcPort: 5000, DstPort: 53}
	innerUDP.SetNetworkLayerForChecksum(innerIP)
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(inner, opts,
		&layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
		innerIP, innerUDP, gopacket.Payload("query")); err != nil {
		t.Fatal(err)
	}
	vx := append([]byte{0x08, 0, 0, 0, 0, 0, 42, 0}, inner.Bytes()...)
	outerIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 0, 1, 5}, DstIP: []byte{10, 0, 9, 9}}
	outerUDP := &layers.UDP{SrcPort: 40000, DstPort: 4789}
	outerUDP.SetNetworkLayerForChecksum(outerIP)
	ipBuf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(ipBuf, opts, outerIP, outerUDP, gopacket.Payload(vx)); err != nil {
		t.Fatal(err)
	}
	ip := ipBuf.Bytes()
	ethHdr := []byte{2, 0, 0, 0, 9, 9, 2, 0, 0, 0, 1, 5, 0x81, 0, 0, 7, 0x08, 0} // one VLAN tag
	sll := append(make([]byte, 14), 0x08, 0)
	sll2 := append([]byte{0x08, 0}, make([]byte, 18)...)
	frames := []struct {
		link layers.LinkType
		data []byte
	}{
		{layers.LinkTypeEthernet, append(append([]byte(nil), ethHdr...), ip...)},
		{layers.LinkTypeRaw, ip},
		{layers.LinkTypeLinuxSLL, append(sll, ip...)},
		{layers.LinkTypeLinuxSLL2, append(sll2, ip...)},
		{layers.LinkTypeNull, append([]byte{2, 0, 0, 0}, ip...)},
		{layers.LinkTypeIEEE802_11, ip}, // not read
	}
	capFile := filepath.Join(t.TempDir(), "links.pcapng")
	f, err := os.Create(capFile)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{LinkType: frames[0].link, SnapLength: 65535}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1_700_000_000, 0)
	for i, fr := range frames {
		id := 0
		if i > 0 {
			if id, err = w.AddInterface(pcapgo.NgInterface{LinkType: fr.link, SnapLength: 65535}); err != nil {
				t.Fatal(err)
			}
		}
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr.data), Length: len(fr.data), InterfaceIndex: id}
		if err := w.WritePacket(ci, fr.data); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	f.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"replay", "-eve", filepath.Join(t.TempDir(), "eve.json"), capFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s", code, stderr.String())
	}
	var sum replaySummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Packets["vxlan"] != 5 || sum.Actions["allow"] != 5 || sum.Unreadable != 1 || sum.Flows != 1 || len(sum.DecodeErrors) != 0 {
		t.Errorf("summary %+v: want 5 VXLAN packets allowed, one flow, one unreadable frame", sum)
	}
	if len(sum.UnknownLinkTypes) != 1 || !strings.Contains(stderr.String(), "skipped 1 frames of link type 105") {
		t.Errorf("unknown link types %v, stderr %q: want a warning for the 802.11 frame", sum.UnknownLinkTypes, stderr.String())
	}
}
