package geneve

// Reason says why a datagram was rejected. It is an error, and small enough that
// returning it allocates nothing; dataplane counts drops in an array indexed by it.
type Reason uint8

// Reasons a GENEVE datagram is rejected.
const (
	ReasonEmpty         Reason = iota + 1 // zero-length UDP payload
	ReasonTruncated                       // shorter than the fixed header
	ReasonVersion                         // version is not 0
	ReasonOptionsLen                      // Opt Len runs past the datagram
	ReasonOptionOverrun                   // an option runs past the options area
	ReasonAWSOption                       // an AWS option too short for its value
	ReasonProtocol                        // protocol type is not IPv4, IPv6 or Ethernet
	ReasonNoPayload                       // nothing after the header
	ReasonInnerMismatch                   // inner IP version disagrees with the protocol type
	NumReasons                            // one past the last reason, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonEmpty:         "empty",
	ReasonTruncated:     "truncated",
	ReasonVersion:       "bad_version",
	ReasonOptionsLen:    "options_past_packet",
	ReasonOptionOverrun: "option_overrun",
	ReasonAWSOption:     "bad_aws_option",
	ReasonProtocol:      "unknown_protocol",
	ReasonNoPayload:     "no_payload",
	ReasonInnerMismatch: "inner_mismatch",
}

// String is the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

func (r Reason) Error() string { return "geneve: " + r.String() }
