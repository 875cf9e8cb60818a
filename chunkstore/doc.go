// Package chunkstore is a node's local content-addressed storage on pebble.
//
// A NAR is cut into content-defined chunks (FastCDC, PlakarKorp's pinned
// "fastcdc-v1.0.0"); each chunk is named by the BLAKE3-256 of its bytes, stored
// once as one independent zstd frame, with small metadata (sizes, CRC-32C of the
// frame, last-touched time) under a separate key. A manifest lists a NAR's
// chunks in order and is itself content-addressed. A NAR is served as the
// concatenation of its frames, which zstd decoders read as one stream, so the
// read path never recompresses. The store knows nothing about caches, tokens
// or the network. See DESIGN.md for the choices and what was rejected.
package chunkstore
