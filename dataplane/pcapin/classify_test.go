package pcapin

import (
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func TestReadsLinkType(t *testing.T) {
	for link, want := range map[layers.LinkType]bool{
		layers.LinkTypeEthernet: true, layers.LinkTypeRaw: true, layers.LinkTypeLinuxSLL: true,
		layers.LinkTypeLinuxSLL2: true, layers.LinkTypeNull: true, layers.LinkTypeLoop: true,
		layers.LinkTypePPP: true, layers.LinkTypePPP_HDLC: true, layers.LinkTypeC_HDLC: true,
		layers.LinkTypeIEEE802_11: false, layers.LinkTypePPPEthernet: false,
	} {
		if got := ReadsLinkType(link); got != want {
			t.Errorf("ReadsLinkType(%v) = %v, want %v", link, got, want)
		}
	}
}
