package cluster

// Handler receives what peers send; called on memberlist's goroutines: must not block long.
type Handler interface {
	HandleMessage(from string, msg []byte) // msg valid only during the call
	PeerJoined(name string)
	PeerLeft(name string)
}

// Transport sends to peers; safe for concurrent use.
type Transport interface {
	LocalName() string
	Peers() []string                      // alive peers, not this node
	Broadcast(msg []byte)                 // best effort (UDP) to every alive peer; len(msg) <= MaxDatagram
	SendTo(peer string, msg []byte) error // reliable (TCP) to one peer; len(msg) <= MaxReliable
}

// MaxDatagram is the largest message Broadcast sends. With the sender's name
// (at most MaxNameLen bytes and a length byte) and memberlist's framing (a message
// type byte, a 5-byte CRC header, and AES-GCM's version byte, 12-byte nonce and
// 16-byte tag: 35 bytes), a datagram is at most 1200+129+35 = 1364 bytes of UDP
// payload, 1412 bytes with IPv6 and UDP headers: one packet under a 1500 MTU.
const MaxDatagram = 1200

// MaxReliable is the largest message SendTo sends.
const MaxReliable = 4 << 20

// MaxNameLen is the longest node name (config.ClusterConfig.NodeName allows no more).
const MaxNameLen = 128
