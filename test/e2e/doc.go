// Package e2e runs the real garretd binary and the real Nix client: caches are
// created through the Attic API, closures pushed with `nix copy --to` and
// substituted with `nix-store -r` into stores private to each test. Tests that
// need nix fail under CI=true when it is missing, and skip loudly otherwise.
//
// The cluster tests (cluster_test.go) start several garretd processes, each
// on its own emulated host (package wan: a network namespace per node, every
// packet between nodes through a user-space forwarder with per-region
// latency, bandwidth caps and cuts). They run the production timings over
// 150 ms between regions: a push to a follower, kill -9 of the leader during
// pushes, a region partition and its heal, a node with the wrong secret,
// Nix's two PUTs split over two nodes, and read-through of NARs a node lacks.
package e2e
