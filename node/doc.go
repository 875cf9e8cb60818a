// Package node is Garret's composition root: New builds a node's parts in
// order (identity, chunk store, libp2p host, Raft catalog, tokens, HTTP API)
// and Shutdown stops them in reverse. cmd/garretd, tests and test/e2e use it;
// nothing else imports it.
package node
