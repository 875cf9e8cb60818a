package chunkstore

import (
	"encoding/hex"
	"fmt"
)

// ChunkID names a chunk: the BLAKE3-256 hash of its uncompressed bytes.
type ChunkID [32]byte

// ManifestID names a manifest: the BLAKE3-256 hash of its encoding.
type ManifestID [32]byte

// String renders the id as lowercase hex.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// String renders the id as lowercase hex.
func (id ManifestID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id ManifestID) IsZero() bool { return id == ManifestID{} }

// ParseManifestID parses the hex form written by ManifestID.String.
func ParseManifestID(s string) (ManifestID, error) {
	var id ManifestID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("chunkstore: invalid manifest id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// ParseChunkID parses the hex form written by ChunkID.String.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("chunkstore: invalid chunk id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText renders the id as hex (catalog records store it this way).
func (id ManifestID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the hex form.
func (id *ManifestID) UnmarshalText(b []byte) error {
	v, err := ParseManifestID(string(b))
	*id = v
	return err
}

// MarshalText renders the id as hex.
func (id ChunkID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the hex form.
func (id *ChunkID) UnmarshalText(b []byte) error {
	v, err := ParseChunkID(string(b))
	*id = v
	return err
}

// Index keys (pebble): one prefix byte, then the 32-byte id. Frames are not
// in the index: they live in segment files (see segments.go and DESIGN.md).
const (
	prefixChunk    = 'm' // m<chunk id>    → chunkMeta (32 bytes)
	prefixManifest = 'f' // f<manifest id> → written-at (8 bytes) + manifest encoding
)

func chunkKey(id ChunkID) []byte       { return indexKey(prefixChunk, id) }
func manifestKey(id ManifestID) []byte { return indexKey(prefixManifest, id) }

func indexKey(prefix byte, id [32]byte) []byte {
	k := make([]byte, 1+len(id))
	k[0] = prefix
	copy(k[1:], id[:])
	return k
}
