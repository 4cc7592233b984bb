package flow

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"

	"weir/dataplane/packet"
)

// Eviction takes unanswered flows first, then closed ones, then the rest; a flow
// idle past its timeout goes before any of them.
func TestEvictionOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		present []string // flows in the full table, oldest first
		want    string   // the one the next new flow evicts
		now     int64
	}{
		{"new before established", []string{"est", "closed", "new"}, "new", 10},
		{"closed before established", []string{"est", "closed", "est2"}, "closed", 10},
		{"established by LRU", []string{"est", "udp-est", "est2"}, "est", 10},
		{"new UDP before TCP", []string{"est", "udp-new", "new"}, "udp-new", 10},
		{"idle first", []string{"udp-est", "new", "est"}, "udp-est", 200 * sec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, sk, _ := newTest(t, Config{MaxFlows: len(tc.present)})
			ids := map[uint64]string{}
			for i, name := range tc.present {
				now := int64(i+1) * sec
				p := tcp(client, uint16(i+1), server, 443, packet.TCPSyn)
				if name == "udp-est" || name == "udp-new" {
					p = udp(client, uint16(i+1), server, 53)
				}
				ids[tb.Track(0, p, 1, nil, now).FlowID] = name
				switch name {
				case "est", "est2":
					tb.Track(0, reverse(p, packet.TCPSyn|packet.TCPAck), 1, nil, now)
				case "udp-est":
					tb.Track(0, reverse(p, 0), 1, nil, now)
				case "closed":
					tb.Track(0, reverse(p, packet.TCPRst), 1, nil, now)
				}
			}
			tb.Track(0, tcp(client, 999, server, 443, packet.TCPSyn), 1, nil, tc.now)
			recs := sk.take()
			if len(recs) != 1 || ids[recs[0].ID] != tc.want {
				t.Fatalf("evicted %v, want %s", recs, tc.want)
			}
		})
	}
}

// A SYN flood from spoofed sources does not evict established flows.
func TestSYNFloodSparesEstablished(t *testing.T) {
	const established, floods, perFlood = 1000, 10, 100_000
	tb := NewTable(Config{MaxFlows: 10_000, Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	now := int64(sec)
	est := make([]*packet.Packet, established)
	ids := make([]uint64, established)
	for i := range est {
		est[i] = tcp(client, uint16(10000+i), server, 443, packet.TCPSyn)
		ids[i] = tb.Track(0, est[i], 60, nil, now).FlowID
		tb.Track(0, reverse(est[i], packet.TCPSyn|packet.TCPAck), 60, nil, now)
		tb.Track(0, withFlags(est[i], packet.TCPAck), 60, nil, now)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	syn := &packet.Packet{Family: 4, Proto: packet.ProtoTCP, Dst: server, DstPort: 443, TCPFlags: packet.TCPSyn}
	for range floods {
		for range perFlood {
			now += 1000
			syn.Src = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			syn.SrcPort = uint16(rng.Uint32())
			tb.Track(0, syn, 60, nil, now)
		}
		for i, p := range est { // the established flows carry on between floods
			if r := tb.Track(0, withFlags(p, packet.TCPAck), 60, nil, now); r.Created || r.FlowID != ids[i] {
				t.Fatalf("established flow %d: %+v, want id %d", i, r, ids[i])
			}
		}
	}
	for i, p := range est {
		if r := tb.Track(0, reverse(p, packet.TCPAck), 60, nil, now); r.Created || r.FlowID != ids[i] || r.ToServer {
			t.Fatalf("established flow %d after the flood: %+v, want id %d", i, r, ids[i])
		}
	}
	if tb.Evicted() < floods*perFlood-10_000 {
		t.Fatalf("evicted %d", tb.Evicted())
	}
}
