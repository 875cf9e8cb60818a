// Command garretd is the Garret server: `garretd [-f server.toml]` runs a node,
// `garretd make-token` mints tokens the way atticadm does, and `garretd
// gen-secret` prints a cluster secret. Invoked as garretadm, atticadm,
// garretd-garretadm or atticd-atticadm (a symlink), its commands are the
// admin set, so `garretadm make-token …` works as `atticadm make-token …`.
// Flags and config only; the logic lives in package node.
package main
