// Package membership is gossip (hashicorp/memberlist): who is alive, in which
// region, at which HTTP and libp2p addresses, whether it may vote, and how far
// away (RTT from memberlist's probes). Gossip is encrypted with a key derived
// from the cluster secret, so a process without it cannot join.
package membership
