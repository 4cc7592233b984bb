package eve

import (
	"fmt"
	"net/netip"
)

// RaceEnabled tells the external tests to skip allocation counts.
const RaceEnabled = raceEnabled

// SuricataAddr is a as Suricata writes it, made apart from appendAddr to check it.
func SuricataAddr(a netip.Addr) string {
	if !a.Is6() {
		return a.String()
	}
	b := a.As16()
	s := fmt.Sprintf("%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x",
		b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
	if z := a.Zone(); z != "" {
		s += "%" + z
	}
	return s
}
