// Package p2p is a node's libp2p side: its stable identity (an Ed25519 key in
// the data dir, whose peer ID is also the node's Raft ServerID and
// ServerAddress), the host, and a raft.StreamLayer over go-libp2p's own
// gostream, so Raft runs over libp2p streams.
//
// What crosses the network, and with which key: every host runs TCP inside a
// libp2p private network (pnet: the whole connection XSalsa20-encrypted with
// a 32-byte PSK, DeriveKey(secret, LabelPNet), HKDF-SHA256 of the cluster
// secret, or of a lone node's own secret from LoadOrCreateSecret), so a
// process without the secret cannot complete a connection; inside it, Noise
// (XX, ChaCha20-Poly1305, authenticated by each node's Ed25519 identity)
// and yamux. Gossip (package membership) is AES-256-GCM with its own key,
// DeriveKey(secret, LabelMemberlist). A host without a PSK does not start.
//
// A resource manager bounds connections, streams per peer and per protocol,
// and memory (limits.go); the node's own callers that meet a limit wait for
// a slot (OpenStream, Call, the chunk fetcher) for up to SlotWait.
package p2p
