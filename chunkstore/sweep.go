package chunkstore

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SweepStats reports what a sweep removed.
type SweepStats struct {
	ManifestsDeleted, ChunksDeleted int
	BytesFreed                      int64
}

// Sweep deletes manifests that are not live and older than grace, then
// chunks that no remaining manifest references and that were last written
// or touched more than grace ago. Liveness comes from the caller (the
// catalog); nothing here is reference-counted, so a crash cannot leak.
func (s *Store) Sweep(ctx context.Context, live func(ManifestID) bool, grace time.Duration) (SweepStats, error) {
	var st SweepStats
	cutoff := time.Now().Add(-grace).Unix()
	b := s.db.NewBatch()
	defer b.Close()
	referenced := make(map[ChunkID]struct{})
	err := s.scan(prefixManifest, func(id [32]byte, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(v) < 8 {
			return nil
		}
		written := int64(binary.LittleEndian.Uint64(v))
		if !live(ManifestID(id)) && written <= cutoff {
			st.ManifestsDeleted++
			return b.Delete(key(prefixManifest, id), nil)
		}
		var m Manifest
		if err := m.UnmarshalBinary(v[8:]); err != nil {
			return err
		}
		for _, c := range m.Chunks {
			referenced[c.ID] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	err = s.scan(prefixMeta, func(id [32]byte, v []byte) error {
		if _, ok := referenced[ChunkID(id)]; ok {
			return nil
		}
		meta, err := decodeMeta(v)
		if err != nil || meta.touched <= cutoff {
			st.ChunksDeleted++
			st.BytesFreed += int64(meta.frameSize)
			if err := b.Delete(key(prefixFrame, id), nil); err != nil {
				return err
			}
			return b.Delete(key(prefixMeta, id), nil)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, b.Commit(pebble.Sync)
}
