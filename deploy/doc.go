// Package deploy holds Garret's deployment files (Dockerfile, compose.yaml,
// the NixOS module and package, fly.toml, the systemd unit; see README.md)
// and, in its tests, the checks they pass on a machine without Docker,
// NixOS or a fly.io account: every .nix file parses, the package's
// vendorHash is the one `go mod vendor` gives, the NixOS module evaluates
// with nixpkgs' lib (when a checkout is given), every server.toml passes
// garretd --mode check-config, the files agree with each other on paths,
// ports and commands, and the systemd unit passes systemd-analyze. It has no
// Go code of its own.
package deploy
