// Package catalog is Garret's Raft-replicated metadata: caches, objects (store
// paths), auxiliary files, token revocations. Writes are typed commands
// proposed through hashicorp/raft (batched into one log entry) and applied by
// a persistent FSM on pebble, which records its last applied index in the same
// batch as each entry's effects so a restart never applies an entry twice.
// Reads come from the node's local state, never a Raft round trip.
package catalog
