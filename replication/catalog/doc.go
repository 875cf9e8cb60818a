// Package catalog is Garret's Raft-replicated metadata: caches, objects (store
// paths), auxiliary files, token revocations. Writes are typed commands
// proposed through hashicorp/raft (batched into one log entry) and applied by
// a persistent FSM on pebble, which records its last applied index in the same
// batch as each entry's effects so a restart never applies an entry twice.
// Reads come from the node's local state, never a Raft round trip.
//
// Every command, written on this node or forwarded by a follower, is
// validated on the leader before it is proposed (validate.go): a known type
// with its parts present, names that parse, each field and the command
// within the bounds of limits.go; an invalid one is ErrInvalidCommand and
// never enters the log. Apply skips, with an error in the log, an entry or a
// command it cannot apply (an unknown type from a newer node during a
// rolling upgrade, a malformed one): the decision depends only on the
// entry's bytes, so every replica skips alike and the applied index advances.
package catalog
