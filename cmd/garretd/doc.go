// Command garretd is the Garret server: `garretd [-f server.toml]` runs a node,
// `garretd make-token` mints tokens the way atticadm does, and `garretd
// gen-secret` prints a cluster secret. Flags and config only; the logic lives
// in package node.
package main
