#!/bin/sh
# Prints the vendorHash of deploy/nixos/package.nix as nixpkgs'
# buildGoModule computes it: the NAR hash (SRI, sha256) of the directory
# `go mod vendor` makes from go.mod and go.sum. With --write, puts it in
# package.nix. Needs go and nix (any Nix >= 2.4; Debian's nix-bin works).
# Run it after every change to go.mod or go.sum: `make vendor-hash`.
set -eu
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
# The module's files as buildGoModule's src sees them (package.nix's fileset).
cp go.mod go.sum "$tmp/"
find . -name '*.go' -not -path './.git/*' -print0 | tar --null -T - -cf - | tar -xf - -C "$tmp"
(cd "$tmp" && GOFLAGS=-mod=mod GOWORK=off go mod vendor)
hash=$(NIX_CONFIG="experimental-features = nix-command" nix hash path --type sha256 "$tmp/vendor")
if [ "${1:-}" = --write ]; then
	sed -i "s|vendorHash = \"[^\"]*\";|vendorHash = \"$hash\";|" deploy/nixos/package.nix
	echo "deploy/nixos/package.nix: vendorHash = $hash"
else
	echo "$hash"
fi
