package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/blake3"
)

// Chunk is one entry of a manifest: a chunk id and its raw size.
type Chunk struct {
	ID   ChunkID
	Size uint32
}

// Manifest is the ordered list of chunks that make up a NAR.
type Manifest struct{ Chunks []Chunk }

// RawSize is the total uncompressed size.
func (m Manifest) RawSize() int64 {
	var n int64
	for _, c := range m.Chunks {
		n += int64(c.Size)
	}
	return n
}

// MarshalBinary is the canonical encoding: version, count, then (id, size) pairs.
func (m Manifest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 5, 5+36*len(m.Chunks))
	b[0] = 1
	binary.LittleEndian.PutUint32(b[1:], uint32(len(m.Chunks)))
	for _, c := range m.Chunks {
		b = append(b, c.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, c.Size)
	}
	return b, nil
}

// UnmarshalBinary decodes MarshalBinary's output.
func (m *Manifest) UnmarshalBinary(b []byte) error {
	if len(b) < 5 || b[0] != 1 {
		return errors.New("chunkstore: bad manifest encoding")
	}
	n := int(binary.LittleEndian.Uint32(b[1:]))
	if len(b) != 5+36*n {
		return fmt.Errorf("chunkstore: manifest of %d bytes for %d chunks", len(b), n)
	}
	m.Chunks = make([]Chunk, n)
	for i := range m.Chunks {
		e := b[5+36*i:]
		copy(m.Chunks[i].ID[:], e[:32])
		m.Chunks[i].Size = binary.LittleEndian.Uint32(e[32:])
	}
	return nil
}

// ID is the BLAKE3-256 of the canonical encoding.
func (m Manifest) ID() ManifestID {
	b, _ := m.MarshalBinary()
	return ManifestID(blake3.Sum256(b))
}

// PutManifest stores a manifest durably (idempotent) and refreshes its
// written-at time, which the sweep's grace period counts from.
func (s *Store) PutManifest(m Manifest) (ManifestID, error) {
	enc, _ := m.MarshalBinary()
	id := ManifestID(blake3.Sum256(enc))
	v := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(enc)), uint64(time.Now().Unix()))
	v = append(v, enc...)
	if err := s.db.Set(key(prefixManifest, id), v, pebble.Sync); err != nil {
		return id, fmt.Errorf("chunkstore: put manifest: %w", err)
	}
	return id, nil
}

// Manifest loads a manifest.
func (s *Store) Manifest(id ManifestID) (Manifest, error) {
	m, _, err := s.manifest(id)
	return m, err
}

func (s *Store) manifest(id ManifestID) (Manifest, int64, error) {
	var m Manifest
	v, closer, err := s.db.Get(key(prefixManifest, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return m, 0, fmt.Errorf("%w: manifest %s", ErrNotFound, id)
	} else if err != nil {
		return m, 0, err
	}
	defer closer.Close()
	if len(v) < 8 {
		return m, 0, fmt.Errorf("%w: manifest %s", ErrCorrupt, id)
	}
	written := int64(binary.LittleEndian.Uint64(v))
	return m, written, m.UnmarshalBinary(v[8:])
}
