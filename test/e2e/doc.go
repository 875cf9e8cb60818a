// Package e2e runs the real garretd binary and the real Nix client: caches are
// created through the Attic API, closures pushed with `nix copy --to` and
// substituted with `nix-store -r` into stores private to each test. Tests that
// need nix fail under CI=true when it is missing, and skip loudly otherwise.
package e2e
