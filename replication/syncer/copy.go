package syncer

import (
	"context"
	"errors"
	"fmt"

	"github.com/garret-cache/garret/chunkstore"
)

// Copier makes manifests and chunks local by copying them from peers:
// only what is missing is asked for, and every frame is verified against
// its chunk id before it is stored. The syncer, durable acknowledgement and
// repair all copy through it.
type Copier struct {
	Store   *chunkstore.Store
	Fetcher Fetcher
	// OnFrames, if set, is told of every batch of frames stored.
	OnFrames func(frames int, bytes int64)
}

// CopyManifest makes manifest id and every chunk it names local. copied
// reports whether anything was missing (and is now here, when err is nil).
func (c *Copier) CopyManifest(ctx context.Context, id chunkstore.ManifestID) (copied bool, err error) {
	_, err = c.Store.Manifest(id)
	had := err == nil
	if err := c.Fetcher.FetchManifest(ctx, id); err != nil {
		return false, err
	}
	m, err := c.Store.Manifest(id)
	if err != nil {
		return !had, err
	}
	missing, err := c.missing(m)
	if err != nil {
		return !had, err
	}
	if len(missing) > 0 {
		if err := c.CopyChunks(ctx, missing); err != nil {
			return true, err
		}
	}
	return !had || len(missing) > 0, nil
}

// Holds reports whether manifest id and all its chunks are local.
func (c *Copier) Holds(id chunkstore.ManifestID) (bool, error) {
	m, err := c.Store.Manifest(id)
	if err != nil {
		if errors.Is(err, chunkstore.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	missing, err := c.missing(m)
	return len(missing) == 0, err
}

// missing lists the distinct chunks of m this node lacks.
func (c *Copier) missing(m chunkstore.Manifest) ([]chunkstore.ChunkID, error) {
	var missing []chunkstore.ChunkID
	seen := map[chunkstore.ChunkID]bool{}
	for _, ch := range m.Chunks {
		if seen[ch.ID] {
			continue
		}
		seen[ch.ID] = true
		if ok, err := c.Store.HasChunk(ch.ID); err != nil {
			return nil, err
		} else if !ok {
			missing = append(missing, ch.ID)
		}
	}
	return missing, nil
}

// batchBytes is how many fetched frame bytes are stored at once.
const batchBytes = 4 << 20

// CopyChunks fetches the frames of ids from peers (nearest that has each),
// verifies and stores them.
func (c *Copier) CopyChunks(ctx context.Context, ids []chunkstore.ChunkID) error {
	remote, err := c.Fetcher.Remote(ctx, ids)
	if err != nil {
		return err
	}
	it, err := remote.Frames(ctx, ids)
	if err != nil {
		return err
	}
	defer it.Close()
	var batch []chunkstore.VerifiedFrame
	var size int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := c.Store.PutVerifiedFrames(batch); err != nil {
			return err
		}
		if c.OnFrames != nil {
			c.OnFrames(len(batch), size)
		}
		batch, size = batch[:0], 0
		return nil
	}
	for _, id := range ids {
		frame, err := it.Next()
		if err != nil {
			return err
		}
		vf, err := c.Store.VerifyFrame(id, frame)
		if err != nil {
			return fmt.Errorf("syncer: chunk %s: %w", id, err)
		}
		batch = append(batch, vf)
		if size += int64(len(frame)); size >= batchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
