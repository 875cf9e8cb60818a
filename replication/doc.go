// Package replication groups what crosses nodes: catalog (the Raft FSM and its
// commands) and p2p (the libp2p host that carries Raft). Membership (gossip)
// and the chunk syncer join them when nodes are added; see DESIGN.md.
package replication
