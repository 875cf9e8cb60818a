package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/blake3"
)

// Chunk is one entry of a manifest: a chunk id and its raw (uncompressed) size.
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

// manifestVersion is the first byte of the canonical encoding.
const manifestVersion = 1

// entryLen is one encoded chunk: id and little-endian uint32 size.
const entryLen = 32 + 4

// MarshalBinary is the canonical encoding: a version byte, the chunk count
// (uint32 LE), then each chunk's id and raw size (uint32 LE). It never fails.
func (m Manifest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 5, 5+entryLen*len(m.Chunks))
	b[0] = manifestVersion
	binary.LittleEndian.PutUint32(b[1:], uint32(len(m.Chunks)))
	for _, c := range m.Chunks {
		b = append(b, c.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, c.Size)
	}
	return b, nil
}

// UnmarshalBinary decodes MarshalBinary's output, rejecting anything else.
func (m *Manifest) UnmarshalBinary(b []byte) error {
	if len(b) < 5 || b[0] != manifestVersion {
		return errors.New("chunkstore: bad manifest encoding")
	}
	n := int(binary.LittleEndian.Uint32(b[1:]))
	if (len(b)-5)%entryLen != 0 || (len(b)-5)/entryLen != n {
		return fmt.Errorf("chunkstore: manifest of %d bytes for %d chunks", len(b), n)
	}
	m.Chunks = make([]Chunk, n)
	for i := range m.Chunks {
		e := b[5+entryLen*i:]
		copy(m.Chunks[i].ID[:], e[:32])
		m.Chunks[i].Size = binary.LittleEndian.Uint32(e[32:])
		if m.Chunks[i].Size == 0 {
			return fmt.Errorf("chunkstore: manifest chunk %d is empty", i)
		}
	}
	return nil
}

// ID is the BLAKE3-256 of the canonical encoding.
func (m Manifest) ID() ManifestID {
	b, _ := m.MarshalBinary()
	return ManifestID(blake3.Sum256(b))
}

// PutManifest stores a manifest durably. It is idempotent; storing it again
// refreshes its written-at time, from which Sweep counts the grace period.
// It ends the hold of the ingests that produced it (see Ingest): at once,
// or when a running sweep ends.
func (s *Store) PutManifest(m Manifest) (ManifestID, error) {
	if err := s.enter(); err != nil {
		return ManifestID{}, err
	}
	defer s.exit()
	enc, _ := m.MarshalBinary()
	id := ManifestID(blake3.Sum256(enc))
	v := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(enc)), uint64(s.now()))
	v = append(v, enc...)
	s.gc.RLock() // a sweep re-checks the written-at time before deleting
	defer s.gc.RUnlock()
	if err := s.db.Set(manifestKey(id), v, pebble.Sync); err != nil {
		return id, fmt.Errorf("chunkstore: put manifest: %w", err)
	}
	s.holds.committed(id)
	return id, nil
}

// Manifest loads a manifest; ErrNotFound if it is not stored here.
func (s *Store) Manifest(id ManifestID) (Manifest, error) {
	if err := s.enter(); err != nil {
		return Manifest{}, err
	}
	defer s.exit()
	m, _, err := s.manifest(id)
	return m, err
}

// manifest loads a manifest and its written-at time.
func (s *Store) manifest(id ManifestID) (Manifest, int64, error) {
	var m Manifest
	v, closer, err := s.db.Get(manifestKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return m, 0, fmt.Errorf("%w: manifest %s", ErrNotFound, id)
	} else if err != nil {
		return m, 0, fmt.Errorf("chunkstore: read manifest %s: %w", id, err)
	}
	defer closer.Close()
	written, err := decodeManifestValue(v, &m)
	if err != nil {
		return m, 0, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, id, err)
	}
	return m, written, nil
}

// decodeManifestValue splits a stored value into its written-at time and
// manifest; m may be nil to read only the time.
func decodeManifestValue(v []byte, m *Manifest) (int64, error) {
	if len(v) < 8 {
		return 0, errors.New("short value")
	}
	written := int64(binary.LittleEndian.Uint64(v))
	if m == nil {
		return written, nil
	}
	return written, m.UnmarshalBinary(v[8:])
}
