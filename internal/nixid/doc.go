// Package nixid holds the validated value types that cross package boundaries in
// Garret: cache names, store-path hashes and NAR hashes. Each is parsed once at
// the edge (HTTP, CLI, config) with ParseX; raw strings do not travel further.
package nixid
