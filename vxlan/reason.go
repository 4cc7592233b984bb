package vxlan

// Reason says why a datagram was rejected. It is an error, and small enough that
// returning it allocates nothing; a receiver counts drops in an array indexed by it.
type Reason uint8

// Reasons a VXLAN datagram is rejected.
const (
	ReasonEmpty     Reason = iota + 1 // zero-length UDP payload
	ReasonTruncated                   // shorter than the 8-byte header
	ReasonNoVNIFlag                   // the I flag is clear
	ReasonNoFrame                     // the payload is shorter than an Ethernet header
	NumReasons                        // one past the last reason, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonEmpty:     "empty",
	ReasonTruncated: "truncated",
	ReasonNoVNIFlag: "no_vni_flag",
	ReasonNoFrame:   "no_frame",
}

// String is the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

func (r Reason) Error() string { return "vxlan: " + r.String() }
