package syncer

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

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
	// Limit caps the frame bytes this node's copies have asked for and not
	// yet stored (NewLimit; nil: no cap).
	Limit *semaphore.Weighted
}

// manifestRemote is what p2p.Fetcher offers besides Fetcher: the manifest
// and, from the same answer, the frame sizes of the chunks its sender holds.
type manifestRemote interface {
	FetchManifestRemote(ctx context.Context, id chunkstore.ManifestID) (chunkstore.Remote, error)
}

// CopyManifest makes manifest id and every chunk it names local. copied
// reports whether anything was missing (and is now here, when err is nil).
// The chunks the peer that sent the manifest holds are fetched from it at
// once (its answer carried their sizes); the rest are looked for.
func (c *Copier) CopyManifest(ctx context.Context, id chunkstore.ManifestID) (copied bool, err error) {
	_, err = c.Store.Manifest(id)
	had := err == nil
	var near chunkstore.Remote
	if !had {
		if mr, ok := c.Fetcher.(manifestRemote); ok {
			near, _ = mr.FetchManifestRemote(ctx, id) // a peer too old to answer: the plain way below
		}
		if near == nil {
			if err := c.Fetcher.FetchManifest(ctx, id); err != nil {
				return false, err
			}
		}
	}
	m, err := c.Store.Manifest(id)
	if err != nil {
		return !had, err
	}
	missing, err := c.missing(m)
	if err != nil {
		return !had, err
	}
	copied = !had || len(missing) > 0
	if near != nil && len(missing) > 0 {
		var there, rest []chunkstore.ChunkID
		for _, ch := range missing {
			if _, ok := near.FrameSize(ch); ok {
				there = append(there, ch)
			} else {
				rest = append(rest, ch)
			}
		}
		if len(there) > 0 {
			if err := c.copyFrom(ctx, near, there); err != nil {
				return true, err
			}
		}
		missing = rest
	}
	if len(missing) > 0 {
		if err := c.CopyChunks(ctx, missing); err != nil {
			return true, err
		}
	}
	return copied, nil
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

// groupBytes is how many frame bytes one request asks a peer for; a copy
// keeps up to groupsInFlight such requests open at once, and every copy of
// the node together at most Copier.Limit bytes. Many small requests in
// parallel, not one large one: each runs on its own libp2p stream, whose
// receive window starts at 256 KiB and grows only by doubling each round
// trip, so at 150 ms RTT one stream needs five round trips for 4 MiB,
// eight streams of 512 KiB about two.
const (
	groupBytes     = 512 << 10
	groupsInFlight = 8
)

// DefaultBytesInFlight is the node-wide cap on frame bytes asked of peers
// and not yet stored.
const DefaultBytesInFlight = 64 << 20

// NewLimit is a cap on bytes in flight for the Copiers of one node.
func NewLimit(bytes int64) *semaphore.Weighted { return semaphore.NewWeighted(bytes) }

// CopyChunks fetches the frames of ids from peers (nearest that has each),
// verifies and stores them, in requests of about groupBytes.
func (c *Copier) CopyChunks(ctx context.Context, ids []chunkstore.ChunkID) error {
	remote, err := c.Fetcher.Remote(ctx, ids)
	if err != nil {
		return err
	}
	return c.copyFrom(ctx, remote, ids)
}

// CopyManifestFrom stores manifest m (its id already checked) and copies
// the chunks of it this node lacks from remote.
func (c *Copier) CopyManifestFrom(ctx context.Context, m chunkstore.Manifest, remote chunkstore.Remote) error {
	if _, err := c.Store.PutManifest(m); err != nil {
		return err
	}
	missing, err := c.missing(m)
	if err != nil || len(missing) == 0 {
		return err
	}
	return c.copyFrom(ctx, remote, missing)
}

// copyFrom copies the frames of ids from remote, in groups of about
// groupBytes, groupsInFlight at once, within c.Limit.
func (c *Copier) copyFrom(ctx context.Context, remote chunkstore.Remote, ids []chunkstore.ChunkID) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(groupsInFlight)
	for len(ids) > 0 {
		n, size := 0, int64(0)
		for n < len(ids) && (n == 0 || size < groupBytes) {
			fs, _ := remote.FrameSize(ids[n])
			size += int64(fs)
			n++
		}
		group := ids[:n]
		ids = ids[n:]
		if c.Limit != nil {
			if err := c.Limit.Acquire(gctx, size); err != nil {
				break // a group failed or ctx ended: reported below
			}
		}
		g.Go(func() error {
			if c.Limit != nil {
				defer c.Limit.Release(size)
			}
			return c.copyGroup(gctx, remote, group)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// copyGroup reads the frames of ids from remote and stores them at once.
func (c *Copier) copyGroup(ctx context.Context, remote chunkstore.Remote, ids []chunkstore.ChunkID) error {
	it, err := remote.Frames(ctx, ids)
	if err != nil {
		return err
	}
	defer it.Close()
	batch := make([]chunkstore.VerifiedFrame, 0, len(ids))
	var size int64
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
		size += int64(len(frame))
	}
	if err := c.Store.PutVerifiedFrames(batch); err != nil {
		return err
	}
	if c.OnFrames != nil {
		c.OnFrames(len(batch), size)
	}
	return nil
}
