package geneve_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/geneve"
)

// gopacketMaxOptions is the largest options area gopacket's Geneve decoder handles:
// it keeps its read offset in a uint8, so 8 + options must stay below 256.
const gopacketMaxOptions = 244

// crossCheck decodes b with Decode and with gopacket's Geneve layer and compares
// every header field and option.
func crossCheck(t *testing.T, b []byte) {
	t.Helper()
	h, payload, aws, err := geneve.Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var g layers.Geneve
	if err := g.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("gopacket: %v", err)
	}
	if g.Version != h.Version() {
		t.Errorf("Version: gopacket %d, ours %d", g.Version, h.Version())
	}
	if int(g.OptionsLength) != h.OptionsLen() {
		t.Errorf("OptionsLength: gopacket %d, ours %d", g.OptionsLength, h.OptionsLen())
	}
	if g.OAMPacket != h.OAM() || g.CriticalOption != h.Critical() {
		t.Errorf("O/C: gopacket %v/%v, ours %v/%v", g.OAMPacket, g.CriticalOption, h.OAM(), h.Critical())
	}
	if uint16(g.Protocol) != h.ProtocolType() {
		t.Errorf("Protocol: gopacket %#04x, ours %#04x", uint16(g.Protocol), h.ProtocolType())
	}
	if g.VNI != h.VNI() {
		t.Errorf("VNI: gopacket %#x, ours %#x", g.VNI, h.VNI())
	}
	if !bytes.Equal(g.Contents, h) || !bytes.Equal(g.Payload, payload) {
		t.Errorf("header/payload split differs: gopacket %d+%d bytes, ours %d+%d",
			len(g.Contents), len(g.Payload), len(h), len(payload))
	}

	ours := walk(t, h.Options())
	if len(ours) != len(g.Options) {
		t.Errorf("we walk %d options, gopacket finds %d", len(ours), len(g.Options))
	}
	var want geneve.AWS
	for i, gopt := range g.Options[:min(len(ours), len(g.Options))] {
		o := ours[i]
		if gopt.Class != o.Class() || gopt.Type != o.Type() || gopt.Flags != o[3]>>5 ||
			int(gopt.Length) != len(o) || !bytes.Equal(gopt.Data, o.Data()) {
			t.Errorf("option %d: gopacket class %#04x type %#02x flags %d len %d data % x; "+
				"ours class %#04x type %#02x flags %d len %d data % x", i,
				gopt.Class, gopt.Type, gopt.Flags, gopt.Length, gopt.Data,
				o.Class(), o.Type(), o[3]>>5, len(o), o.Data())
		}
		// The AWS values, derived from gopacket's view of the options.
		if gopt.Class != geneve.ClassAWS {
			continue
		}
		switch gopt.Type {
		case geneve.AWSTypeEndpointID:
			want.EndpointID = binary.BigEndian.Uint64(gopt.Data)
		case geneve.AWSTypeAttachmentID:
			want.AttachmentID = binary.BigEndian.Uint64(gopt.Data)
		case geneve.AWSTypeFlowCookie:
			want.FlowCookie = binary.BigEndian.Uint32(gopt.Data)
		default:
			continue
		}
		want.Present |= 1 << gopt.Type
	}
	if aws != want {
		t.Errorf("AWS = %+v, gopacket's options say %+v", aws, want)
	}

	// The full gopacket decoder also finds the inner packet where we do.
	p := gopacket.NewPacket(b, layers.LayerTypeGeneve, gopacket.Default)
	var inner gopacket.LayerType
	switch h.ProtocolType() {
	case geneve.ProtoIPv4:
		inner = layers.LayerTypeIPv4
	case geneve.ProtoIPv6:
		inner = layers.LayerTypeIPv6
	case geneve.ProtoEthernet:
		inner = layers.LayerTypeEthernet
	}
	if l := p.Layer(inner); l == nil {
		t.Errorf("gopacket finds no %v layer: %v", inner, p)
	} else if !bytes.Equal(l.LayerContents(), payload[:len(l.LayerContents())]) {
		t.Errorf("gopacket's %v layer does not start the payload", inner)
	}
}

func TestGopacketCrossCheck(t *testing.T) {
	in4 := innerIPv4(t, 64)
	in6 := innerIPv6(t, 33)
	eth := innerEthernet(t)
	vflags := geneve.AppendAWSHeader(nil, geneve.ProtoIPv6, testAWS)
	vflags[1] = 0x80
	binary.BigEndian.PutUint32(vflags[4:], 0x00abcd00)
	cases := map[string][]byte{
		"gwlb ipv4":     gwlbPacket(geneve.ProtoIPv4, in4),
		"gwlb ipv6":     gwlbPacket(geneve.ProtoIPv6, in6),
		"gwlb ethernet": gwlbPacket(geneve.ProtoEthernet, eth),
		"no options":    append(header(geneve.ProtoIPv4), in4...),
		"extra options": append(header(geneve.ProtoIPv4, optOtherClass2, optCookie, optAWSCritical, optEndpoint,
			optAWSUnknown, optAttachment, optOtherClass), in4...),
		"longest option": append(header(geneve.ProtoIPv6, optExperimental, optCookie, optEndpoint), in6...),
		"reserved bits":  append(header(geneve.ProtoIPv6, opt{0x0101, 0x81, word(1, 0)}), in6...),
		"oam and vni":    append(vflags, in6...),
	}
	// Option R bits set, which AppendOption cannot produce.
	rbits := append(header(geneve.ProtoIPv4, optEndpoint, optOtherClass), in4...)
	rbits[8+12+3] |= 0xa0
	cases["option R bits"] = rbits
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { crossCheck(t, b) })
	}
}

// randomPacket is a valid GENEVE datagram with random flags, VNI, options (the AWS
// ones among them at random places, or missing) and an inner packet matching the
// protocol type.
func randomPacket(r *rand.Rand, in4, in6, eth []byte) []byte {
	var opts [][]byte
	area := 0
	for n := r.IntN(8); n > 0; n-- {
		words := r.IntN(32)
		if words > 8 && r.IntN(4) != 0 {
			words = r.IntN(9)
		}
		class := uint16(r.Uint32())
		if class == geneve.ClassAWS {
			class++
		}
		data := make([]byte, 4*words)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		o := geneve.AppendOption(nil, class, uint8(r.Uint32()), data)
		o[3] |= byte(r.IntN(8)) << 5 // R bits
		if area+len(o) > gopacketMaxOptions-32 {
			break
		}
		opts = append(opts, o)
		area += len(o)
	}
	a := geneve.AWS{EndpointID: r.Uint64(), AttachmentID: r.Uint64(), FlowCookie: r.Uint32()}
	aws := [][]byte{
		geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID, binary.BigEndian.AppendUint64(nil, a.EndpointID)),
		geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeAttachmentID, binary.BigEndian.AppendUint64(nil, a.AttachmentID)),
		geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeFlowCookie, binary.BigEndian.AppendUint32(nil, a.FlowCookie)),
	}
	for _, o := range aws {
		if r.IntN(5) == 0 {
			continue
		}
		i := r.IntN(len(opts) + 1)
		opts = append(opts[:i], append([][]byte{o}, opts[i:]...)...)
	}
	var optArea []byte
	for _, o := range opts {
		optArea = append(optArea, o...)
	}
	proto, inner := geneve.ProtoIPv4, in4
	switch r.IntN(3) {
	case 1:
		proto, inner = geneve.ProtoIPv6, in6
	case 2:
		proto, inner = geneve.ProtoEthernet, eth
	}
	b := geneve.AppendHeader(nil, proto, r.Uint32()&0xffffff, optArea)
	b[1] = byte(r.Uint32()) // O, C and reserved bits
	b[7] = byte(r.Uint32()) // reserved
	return append(b, inner...)
}

func TestGopacketCrossCheckRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	in4, in6, eth := innerIPv4(t, 40), innerIPv6(t, 41), innerEthernet(t)
	for i := range 500 {
		b := randomPacket(r, in4, in6, eth)
		t.Run(fmt.Sprint(i), func(t *testing.T) { crossCheck(t, b) })
	}
}
