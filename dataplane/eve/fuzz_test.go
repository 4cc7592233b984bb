package eve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/geneve"
)

// fuzzAddrs takes the addresses of a record from b: v4 or v6 by a bit of kinds, 4
// or 16 bytes each, zeros when b runs out.
func fuzzAddrs(b []byte, kinds uint8) [4]netip.Addr {
	var out [4]netip.Addr
	for i := range out {
		if kinds&(1<<i) != 0 {
			var a [16]byte
			b = b[copy(a[:], b):]
			out[i] = netip.AddrFrom16(a)
		} else {
			var a [4]byte
			b = b[copy(a[:], b):]
			out[i] = netip.AddrFrom4(a)
		}
	}
	return out
}

// FuzzEVE formats a flow record and an alert built from the input and checks that
// each line is one valid JSON object, on one line, that gives the strings back: the
// session name, the signature, the category and an address zone, each with its bytes
// that are not valid UTF-8 replaced by U+FFFD one for one (see validOf).
func FuzzEVE(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1, 10, 0, 0, 2}, uint8(0), uint8(6), uint64(0x01bb9c40_1b12_0203), int64(1714979289123456789), int64(95e9), int32(-27000),
		[]byte{0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x0d, 0xf0, 0xad, 0x0b, 0x0e},
		"prod-eni", "ET POLICY test", "Misc activity", "")
	f.Add([]byte("\x20\x01\x0d\xb8"), uint8(0x0f), uint8(17), ^uint64(0), int64(-1), int64(-1<<63), int32(1<<30), []byte{},
		"tab\there\x7f\x00", "quote\" back\\slash \u2028\u2029", "\xff\xfe bad \xed\xa0\x80 utf8", "eth0\"\x01")
	f.Fuzz(func(t *testing.T, addrs []byte, kinds, proto uint8, nums uint64, startNs, ageNs int64, offset int32,
		aws []byte, session, signature, category, zone string) {
		a := fuzzAddrs(addrs, kinds)
		if zone != "" && kinds&0x10 != 0 {
			a[0] = a[0].WithZone(zone) // a v4 address takes no zone
		}
		var awsb [21]byte
		copy(awsb[:], aws)
		loc := time.FixedZone("", int(offset))
		t0 := time.Unix(0, startNs).In(loc)
		r := flow.Record{
			ID: nums ^ uint64(startNs), Proto: proto, Src: a[0], Dst: a[1],
			SrcPort: uint16(nums), DstPort: uint16(nums >> 16),
			Start: t0, End: t0.Add(time.Duration(ageNs)),
			PktsToServer: nums, PktsToClient: nums >> 1, BytesToServer: nums * 3, BytesToClient: ^nums,
			State: flow.State(nums >> 32 & 7), Reason: flow.EndReason(nums >> 35 & 7),
			TCPFlagsToServer: uint8(nums >> 40), TCPFlagsToClient: uint8(nums >> 48),
			Action: policy.Action(nums >> 56 & 3),
			AWS: geneve.AWS{EndpointID: binary.LittleEndian.Uint64(awsb[0:]), AttachmentID: binary.LittleEndian.Uint64(awsb[8:]),
				FlowCookie: binary.LittleEndian.Uint32(awsb[16:]), Present: awsb[20]},
			Tunnel: flow.Tunnel{Encap: kinds >> 5 & 3, Src: a[2], Dst: a[3], SrcPort: uint16(nums >> 24),
				DstPort: uint16(nums >> 8), VNI: uint32(nums >> 20)},
			Direction: uint8(nums >> 58 & 3), Session: uint16(nums >> 60 & 3), Alerts: uint32(nums >> 13),
		}
		sessions := []string{"", session, "other"}
		al := Alert{
			Action: AlertAction(kinds >> 7), GID: uint32(nums), SignatureID: uint32(nums >> 32), Rev: uint32(startNs),
			Severity: uint8(offset), Signature: signature, Category: category,
			Time: r.End, FlowID: r.ID, Proto: r.Proto, Src: r.Src, Dst: r.Dst, SrcPort: r.SrcPort, DstPort: r.DstPort,
			AWS: r.AWS, Tunnel: r.Tunnel, Direction: r.Direction, Session: r.Session,
			// The fields Suricata 8 adds, from the same input: the network's strings
			// are the session name and the category again, the packet is aws.
			PcapCnt: nums >> 7, ToServer: kinds&1 != 0,
			Flow: FlowState{PktsToServer: nums >> 2, PktsToClient: nums >> 5, BytesToServer: nums >> 9,
				BytesToClient: nums >> 11, Start: r.Start},
			InnerTunnel: IPTunnel{Src: a[3], Dst: a[2], Proto: [4]uint8{0, 4, 41, 47}[nums>>44&3], Depth: uint8(nums >> 46)},
			AppProto:    AppProto(nums >> 54 & 3), DNSQuery: session, DNSType: uint16(nums >> 17), TLSSNI: category,
			HasEther: kinds&2 != 0, LinkType: uint16(nums >> 29),
		}
		copy(al.SrcMAC[:], awsb[:6])
		copy(al.DstMAC[:], awsb[6:12])
		if kinds&4 != 0 {
			al.Packet = aws
		}
		buf := make([]byte, 0, 4096)

		// The flow record.
		buf = AppendFlowNamed(buf[:0], &r, sessions)
		m := fuzzDecode(t, buf)
		if m["event_type"] != "flow" || m["flow_id"] != json.Number(strconv.FormatUint(r.ID, 10)) {
			t.Fatalf("event_type %v flow_id %v: %s", m["event_type"], m["flow_id"], buf)
		}
		if _, ok := m["flow"].(map[string]any); !ok {
			t.Fatalf("no flow object: %s", buf)
		}
		fuzzContext(t, m, &r.Tunnel, r.Session, sessions, buf)
		fuzzAddr(t, m["src_ip"], r.Src, buf)
		if m["ip_v"] != fuzzIPVersion(r.Src) {
			t.Fatalf("flow ip_v %v for %v: %s", m["ip_v"], r.Src, buf)
		}
		if w, _ := m["weir"].(map[string]any); (w["alerts"] != nil) != (r.Alerts > 0) ||
			m["flow"].(map[string]any)["alerted"] != (r.Alerts > 0) {
			t.Fatalf("alerts %d: %s", r.Alerts, buf)
		}

		// The alert, through the queue's form of it too.
		e := alertEvent(&al)
		if back := e.alert(); !reflect.DeepEqual(back, al) {
			t.Fatalf("alert changed on the queue: %+v, want %+v", back, al)
		}
		buf = AppendAlertNamed(buf[:0], &al, sessions)
		m = fuzzDecode(t, buf)
		if m["event_type"] != "alert" {
			t.Fatalf("event_type %v: %s", m["event_type"], buf)
		}
		alert, ok := m["alert"].(map[string]any)
		if !ok {
			t.Fatalf("no alert object: %s", buf)
		}
		if alert["signature"] != validOf(signature) || alert["category"] != validOf(category) {
			t.Fatalf("signature %q category %q, want %q %q: %s", alert["signature"], alert["category"],
				validOf(signature), validOf(category), buf)
		}
		if alert["signature_id"] != json.Number(strconv.FormatUint(uint64(al.SignatureID), 10)) ||
			alert["action"] != al.Action.String() {
			t.Fatalf("alert %v: %s", alert, buf)
		}
		fuzzContext(t, m, &al.Tunnel, al.Session, sessions, buf)
		fuzzAddr(t, m["src_ip"], al.Src, buf)
		fuzzAlertExtras(t, m, &al, buf)
	})
}

// fuzzAlertExtras checks the fields Suricata 8 adds to an alert: each there when it
// must be, with the value given.
func fuzzAlertExtras(t *testing.T, m map[string]any, a *Alert, line []byte) {
	t.Helper()
	if m["ip_v"] != fuzzIPVersion(a.Src) {
		t.Fatalf("ip_v %v for %v: %s", m["ip_v"], a.Src, line)
	}
	if _, ok := m["pcap_cnt"]; ok != (a.PcapCnt != 0) {
		t.Fatalf("pcap_cnt present %v for %d: %s", ok, a.PcapCnt, line)
	}
	if s, _ := m["pkt_src"].(string); s == "" {
		t.Fatalf("no pkt_src: %s", line)
	}
	if dns, ok := m["dns"].(map[string]any); ok != (a.DNSQuery != "") {
		t.Fatalf("dns present %v for query %q: %s", ok, a.DNSQuery, line)
	} else if ok {
		q := dns["queries"].([]any)[0].(map[string]any)
		if q["rrname"] != validOf(a.DNSQuery) {
			t.Fatalf("dns rrname %q, want %q: %s", q["rrname"], validOf(a.DNSQuery), line)
		}
	}
	if tls, ok := m["tls"].(map[string]any); ok != (a.TLSSNI != "") {
		t.Fatalf("tls present %v for sni %q: %s", ok, a.TLSSNI, line)
	} else if ok && tls["sni"] != validOf(a.TLSSNI) {
		t.Fatalf("tls.sni %q, want %q: %s", tls["sni"], validOf(a.TLSSNI), line)
	}
	if p, ok := m["packet"].(string); ok != (a.Packet != nil) {
		t.Fatalf("packet present %v: %s", ok, line)
	} else if ok {
		if got, err := base64.StdEncoding.DecodeString(p); err != nil || !bytes.Equal(got, a.Packet) {
			t.Fatalf("packet %q decodes to %x (%v), want %x", p, got, err, a.Packet)
		}
	}
	if e, ok := m["ether"].(map[string]any); ok != a.HasEther {
		t.Fatalf("ether present %v: %s", ok, line)
	} else if ok && e["src_mac"] != net.HardwareAddr(a.SrcMAC[:]).String() {
		t.Fatalf("ether.src_mac %v, want %v", e["src_mac"], net.HardwareAddr(a.SrcMAC[:]))
	}
	tun, ok := m["tunnel"].(map[string]any)
	inner, outer := a.InnerTunnel.Proto != 0, a.Tunnel.Encap != flow.EncapNone
	if ok != (inner || outer) {
		t.Fatalf("tunnel present %v: %s", ok, line)
	}
	if ok {
		depth := 0
		if inner {
			depth = max(int(a.InnerTunnel.Depth), 1)
		}
		if outer {
			depth++
		}
		if tun["depth"] != json.Number(strconv.Itoa(depth)) || tun["pkt_src"] != "wire/pcap" {
			t.Fatalf("tunnel %v, want depth %d: %s", tun, depth, line)
		}
	}
	if fl, ok := m["flow"].(map[string]any); ok != (a.FlowID != 0) {
		t.Fatalf("flow present %v for flow id %d: %s", ok, a.FlowID, line)
	} else if ok {
		client := a.Src
		if !a.ToServer {
			client = a.Dst
		}
		fuzzAddr(t, fl["src_ip"], client, line)
	}
}

// fuzzIPVersion is the ip_v an event about a has.
func fuzzIPVersion(a netip.Addr) any {
	if a.Is4() {
		return json.Number("4")
	}
	return json.Number("6")
}

// fuzzDecode checks that line is one JSON object on one line and decodes it.
func fuzzDecode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if bytes.ContainsAny(line, "\n\r") || !utf8.Valid(line) {
		t.Fatalf("line with a line break or invalid UTF-8: %q", line)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not valid JSON: %v\n%q", err, line)
	}
	if dec.More() {
		t.Fatalf("trailing data: %q", line)
	}
	return m
}

// fuzzContext checks the weir object's mirror session name.
func fuzzContext(t *testing.T, m map[string]any, tun *flow.Tunnel, session uint16, sessions []string, line []byte) {
	t.Helper()
	w, _ := m["weir"].(map[string]any)
	got, ok := w["session"]
	want := tun.Encap == flow.EncapVXLAN && session != 0 && int(session) < len(sessions)
	if ok != want {
		t.Fatalf("weir.session present %v, want %v: %s", ok, want, line)
	}
	if want && got != validOf(sessions[session]) {
		t.Fatalf("weir.session %q, want %q: %s", got, validOf(sessions[session]), line)
	}
}

// fuzzAddr checks an address, its zone escaped.
func fuzzAddr(t *testing.T, got any, a netip.Addr, line []byte) {
	t.Helper()
	want := SuricataAddr(a.WithZone(""))
	if z := a.Zone(); z != "" {
		want += "%" + validOf(z)
	}
	if got != want {
		t.Fatalf("address %q, want %q: %s", got, want, line)
	}
}
