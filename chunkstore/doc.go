// Package chunkstore is a node's local content-addressed storage.
//
// A NAR is cut into content-defined chunks (FastCDC, PlakarKorp's pinned
// "fastcdc-v1.0.0"; a NAR under NarSizeThreshold is one chunk). Each chunk is
// named by the BLAKE3-256 of its bytes and stored once, as one independent
// zstd frame appended to a segment file; a small index entry in pebble v2
// holds its sizes, the CRC-32C of the frame, its place and the time it was
// last written or relied on. A Manifest lists a NAR's chunks in order and is
// itself content-addressed (ManifestID).
//
// A NAR is served as the concatenation of its frames, which zstd decoders
// (Nix included) read as one stream, so the read path never recompresses:
// OpenNAR resolves a manifest from index entries alone, so the served size is
// exact before the first byte, and NAR.WriteRange checks each frame's CRC
// before writing it. Frame and PutFrame move single frames between nodes;
// PutFrame verifies by decompressing and hashing.
//
// Scrub reads every stored frame back at a bounded rate and checks it in
// full (decompressed and hashed), dropping the bad ones for the caller to
// fetch again; a NAR opened with Sources.Refetch replaces a bad frame it
// meets while streaming with one fetched elsewhere, and keeps it.
//
// There are no reference counts. Sweep deletes what the caller's liveness
// function no longer wants once a grace period has passed, and compacts
// segment files that are mostly dead.
//
// The store knows nothing about caches, tokens, narinfo or the network.
// DESIGN.md records the choices, the measurements behind them (bench/storage)
// and what was rejected.
package chunkstore
