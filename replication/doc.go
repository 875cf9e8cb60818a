// Package replication is the home of everything that crosses nodes; each
// subpackage is named for what it holds:
//
//	catalog     the Raft-replicated catalog (caches, objects, files, token
//	            revocations, cluster id): FSM state in pebble, commands
//	            validated before the log, forwarding from followers
//	membership  gossip (hashicorp/memberlist): who is alive, in which region,
//	            how far away
//	p2p         the libp2p host (private network, resource limits), the Raft
//	            stream layer and the chunk and staged-upload protocols
//	cluster     the cluster controller: voter placement, rejoining, admin
//	            join/leave/remove, cluster status; the only code that changes
//	            Raft membership
//	gc          garbage collection: download times, retention (leader), the sweep of the local store
//	placement   which nodes hold an object (every node, or N per region by
//	            rendezvous hashing)
//	syncer      copies what placement gives this node from its peers, in
//	            the background, following the catalog's change log
//	repair      scrubs the local chunks (periodic and on demand) and fetches
//	            the bad ones again from peers
//
// # Node-to-node protocols
//
// Every protocol runs over libp2p inside the cluster's private network, so
// only holders of the cluster secret (or a lone node's own secret) can open
// a stream at all; "who" is who may use it beyond that. Limits are read
// limits on the request; streams per peer and protocol are bounded by the
// resource manager (p2p/limits.go: 64 for chunks, 16 for Raft, 128 for the
// others, each direction).
//
//	ID                          package  who may call                       request limit
//	/garret/raft/1              p2p      Raft peers (hashicorp/raft RPCs)  Raft's own framing; log entries ≤ 16 MiB (catalog.MaxBatchBytes)
//	/garret/catalog-forward/1   catalog  servers in the Raft configuration  catalog.MaxCommandBytes + 64 KiB, validated before the log
//	/garret/catalog-remove/1    catalog  servers in the Raft configuration  4 KiB
//	/garret/catalog-leave/1     catalog  a server, about itself only        4 KiB
//	/garret/status/1            catalog  any peer (indexes and Raft state)  nothing read
//	/garret/chunks/2            p2p      any peer (manifests, frame sizes,  1 MiB, ≤ 4096 chunk ids; frames received ≤ 64 MiB
//	                                     frames by content id; a manifest
//	                                     with its chunks' sizes)
//	/garret/staged/1            p2p      any peer (a NAR Nix PUT here)      4 KiB
//	/garret/copy/1              syncer   servers in the Raft configuration  8 MiB (manifest ≤ 2 MiB inline); 16 served at once,
//	                                     (hold this manifest now: a push's  4 min each; frames verified as fetched
//	                                     durable acknowledgement)
//	/garret/sync-status/1       syncer   any peer (backlog, lag, rate)      nothing read
//
// Gossip (memberlist, UDP and TCP) is outside libp2p, encrypted with a key
// derived from the same secret; unencrypted gossip is refused.
package replication
