// Package p2p is a node's libp2p side: its stable identity (an Ed25519 key in
// the data dir, whose peer ID is also the node's Raft ServerID and
// ServerAddress), the host (TCP + Noise + yamux only, optionally inside a
// private network keyed by the cluster secret), and a raft.StreamLayer over
// go-libp2p's own gostream, so Raft runs over libp2p streams.
package p2p
