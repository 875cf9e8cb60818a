package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/garret-cache/garret/replication/placement"
)

// CopyProtocol asks a node to hold a manifest and every chunk it names now,
// and answers once it does (or cannot): the durable acknowledgement of a
// push. The asked node copies from the asker first.
const CopyProtocol protocol.ID = "/garret/copy/1"

// MaxCopyTime bounds one copy request, and so how long a push waits for
// its copies: Nix's curl gives up on a transfer that moved nothing for
// 300 s (stalled-download-timeout), and the push answers before that.
const MaxCopyTime = 4 * time.Minute

// maxCopiesServed is how many copy requests a node serves at once; more
// wait for a slot (within MaxCopyTime).
const maxCopiesServed = 16

// ErrTooFewCopies means a push could not be copied to as many nodes as
// [cluster] min-copies-before-ack asks, so it is not acknowledged.
var ErrTooFewCopies = errors.New("too few nodes hold the push")

// copyRequest names the manifest to copy. When the asker holds it all, the
// manifest itself and the frame size of each of its chunks come along
// (Data, Sizes), so the asked node fetches the frames from the asker at
// once, without asking for the manifest and the sizes first: two round
// trips fewer for every push.
type copyRequest struct {
	Manifest string   `json:"manifest"`
	Data     []byte   `json:"data,omitempty"`  // the manifest's binary form
	Sizes    []uint32 `json:"sizes,omitempty"` // frame size of each chunk of Data, in order
}

// maxInlineManifest is the largest manifest sent in a copy request (about
// 50,000 chunks, a NAR of some GiB); a larger one is fetched by the asked
// node. maxCopyRequest bounds what a node reads of a request.
const (
	maxInlineManifest = 2 << 20
	maxCopyRequest    = 8 << 20
)

type copyReply struct {
	Error string `json:"error,omitempty"`
}

// ServeCopies answers other nodes' copy requests, copying onto store
// through fetcher (the asker first) within limit. Only peers allow accepts
// (the servers of the Raft configuration; nil: any) may ask: holding the
// cluster secret lets a process connect, not make nodes fetch.
func ServeCopies(h host.Host, store *chunkstore.Store, fetcher *p2p.Fetcher, limit *semaphore.Weighted, allow func(peer.ID) bool, log *slog.Logger) {
	slots := make(chan struct{}, maxCopiesServed)
	h.SetStreamHandler(CopyProtocol, func(s network.Stream) {
		defer s.Close()
		if allow != nil && !allow(s.Conn().RemotePeer()) {
			log.Warn("refused a copy request from a peer outside the Raft configuration", "peer", s.Conn().RemotePeer())
			_ = s.Reset()
			return
		}
		_ = s.SetDeadline(time.Now().Add(MaxCopyTime))
		var req copyRequest
		if err := json.NewDecoder(io.LimitReader(s, maxCopyRequest)).Decode(&req); err != nil {
			_ = s.Reset()
			return
		}
		answer := func(err error) {
			var r copyReply
			if err != nil {
				r.Error = err.Error()
			}
			_ = json.NewEncoder(s).Encode(r)
		}
		id, err := chunkstore.ParseManifestID(req.Manifest)
		if err != nil {
			answer(err)
			return
		}
		// The copy stops when the asker gives up (its side of the stream
		// closes) or after MaxCopyTime.
		ctx, cancel := context.WithTimeout(context.Background(), MaxCopyTime)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, s)
			cancel()
		}()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			answer(fmt.Errorf("busy: %w", ctx.Err()))
			return
		}
		from := s.Conn().RemotePeer()
		c := &Copier{Store: store, Fetcher: fetcher.Prefer(from), Limit: limit}
		if m, sizes, ok := req.inline(id); ok {
			err = c.CopyManifestFrom(ctx, m, fetcher.RemoteAt(from, sizes))
		} else {
			_, err = c.CopyManifest(ctx, id)
		}
		if err != nil {
			log.Warn("copy asked by a peer failed", "peer", from, "manifest", id, "err", err)
		}
		answer(err)
	})
}

// inline is the request's manifest and frame sizes, when it carries them
// and they are consistent with id.
func (r copyRequest) inline(id chunkstore.ManifestID) (chunkstore.Manifest, map[chunkstore.ChunkID]uint32, bool) {
	var m chunkstore.Manifest
	if len(r.Data) == 0 || m.UnmarshalBinary(r.Data) != nil || m.ID() != id || len(r.Sizes) != len(m.Chunks) {
		return m, nil, false
	}
	sizes := make(map[chunkstore.ChunkID]uint32, len(m.Chunks))
	for i, c := range m.Chunks {
		sizes[c.ID] = r.Sizes[i]
	}
	return m, sizes, true
}

// localRequest is the copy request for manifest id, and whether this node
// holds the manifest and every chunk of it; when it does, the request
// carries the manifest and its frame sizes (one read of each serves both).
func (a *Acker) localRequest(id chunkstore.ManifestID) (req copyRequest, holds bool, err error) {
	req = copyRequest{Manifest: id.String()}
	store := a.deps.Local.Store
	m, err := store.Manifest(id)
	if errors.Is(err, chunkstore.ErrNotFound) {
		return req, false, nil
	} else if err != nil {
		return req, false, err
	}
	sizes := make([]uint32, len(m.Chunks))
	for i, c := range m.Chunks {
		n, ok, err := store.FrameSize(c.ID)
		if err != nil {
			return req, false, err
		}
		if !ok {
			return req, false, nil
		}
		sizes[i] = n
	}
	if data, err := m.MarshalBinary(); err == nil && len(data) <= maxInlineManifest {
		req.Data, req.Sizes = data, sizes
	}
	return req, true, nil
}

// AckConfig is [cluster] min-copies-before-ack.
type AckConfig struct {
	// Copies is how many nodes, this one included, must hold every chunk of
	// a push before it is acknowledged; at most the live nodes count (a
	// cluster with one node up still takes pushes). 1: no wait.
	Copies int
	// CopiesPerRegion is placement's ([cluster] copies-per-region): the
	// nodes it names are asked first.
	CopiesPerRegion int
	Log             *slog.Logger
}

// AckDeps are what the Acker works through.
type AckDeps struct {
	Host host.Host
	Self placement.Node
	// Peers are the other live nodes, nearest first.
	Peers func() []placement.Node
	// Local copies onto this node (a push staged on another node).
	Local *Copier
}

// Acker holds a push back until enough nodes hold it: it asks the nearest
// node of another region first (a region can be lost), then the nearest
// others, all at once, and asks the next when one fails.
type Acker struct {
	cfg  AckConfig
	deps AckDeps

	mu       sync.Mutex
	attempts map[chunkstore.ManifestID]*attempt // started in the background

	waits    prometheus.Histogram
	failures prometheus.Counter
	short    prometheus.Counter
}

// NewAcker makes an Acker; cfg.Copies below 1 is 1.
func NewAcker(cfg AckConfig, deps AckDeps) *Acker {
	if cfg.Copies < 1 {
		cfg.Copies = 1
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Acker{cfg: cfg, deps: deps, attempts: map[chunkstore.ManifestID]*attempt{},
		waits: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "garret_ack_wait_seconds",
			Help:    "How long pushes waited for min-copies-before-ack nodes to hold them.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ack_failures_total",
			Help: "Pushes refused because too few nodes could take a copy."}),
		short: prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ack_short_total",
			Help: "Pushes acknowledged with fewer copies than min-copies-before-ack because fewer nodes were live."}),
	}
}

// Collectors are the Acker's series, for the node's registry.
func (a *Acker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.waits, a.failures, a.short}
}

// attempt is a background Ensure: err is set when done is closed.
type attempt struct {
	done    chan struct{}
	err     error
	started time.Time
}

// maxAttempts bounds the background attempts kept; attemptTTL is how long
// one nobody asked for is kept (as long as Nix's NAR stays staged).
const (
	maxAttempts = 4096
	attemptTTL  = time.Hour
)

// Start begins making manifest id durable in the background; a later
// Ensure for it joins the attempt instead of starting over.
func (a *Acker) Start(id chunkstore.ManifestID) {
	if a.cfg.Copies <= 1 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.attempts[id]; ok {
		return
	}
	if len(a.attempts) >= maxAttempts {
		for k, at := range a.attempts {
			if time.Since(at.started) > attemptTTL {
				delete(a.attempts, k)
			}
		}
		if len(a.attempts) >= maxAttempts {
			return // Ensure does the work when asked
		}
	}
	at := &attempt{done: make(chan struct{}), started: time.Now()}
	a.attempts[id] = at
	go func() {
		at.err = a.ensure(context.Background(), id)
		close(at.done)
	}()
}

// Ensure returns once min(Copies, live nodes) nodes hold manifest id and
// every chunk it names, or ErrTooFewCopies when the nodes asked could not
// take it within MaxCopyTime. It joins an attempt Start began; one that
// failed is tried again.
func (a *Acker) Ensure(ctx context.Context, id chunkstore.ManifestID) error {
	if a.cfg.Copies <= 1 {
		return nil
	}
	a.mu.Lock()
	at := a.attempts[id]
	a.mu.Unlock()
	if at != nil {
		select {
		case <-at.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
		if a.attempts[id] == at {
			delete(a.attempts, id)
		}
		a.mu.Unlock()
		if at.err == nil {
			return nil
		}
	}
	return a.ensure(ctx, id)
}

func (a *Acker) ensure(ctx context.Context, id chunkstore.ManifestID) error {
	start := time.Now()
	peers := a.deps.Peers()
	need := min(a.cfg.Copies, 1+len(peers))
	if need < a.cfg.Copies {
		a.short.Inc()
	}
	held := 0
	req, local, err := a.localRequest(id)
	if err != nil {
		return err
	}
	if local {
		held++
	}
	ask := a.order(id, peers, !local)
	if held >= need {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, MaxCopyTime)
	defer cancel()
	type result struct {
		node string
		err  error
	}
	results := make(chan result, len(ask))
	asking := map[string]context.CancelFunc{} // node id → cancels its copy
	next := 0
	var errs []error
	// A node gossip stops showing is not waited for: its copy is given up
	// and the next node asked.
	watch := time.NewTicker(500 * time.Millisecond)
	defer watch.Stop()
	for held < need {
		for len(asking) < need-held && next < len(ask) {
			n := ask[next]
			next++
			actx, acancel := context.WithCancel(ctx)
			asking[n.ID] = acancel
			go func() { results <- result{n.ID, a.copyTo(actx, n, req)} }()
		}
		if len(asking) == 0 {
			a.failures.Inc()
			return fmt.Errorf("%w: %d of %d nodes hold manifest %s: %w", ErrTooFewCopies, held, need, id, errors.Join(errs...))
		}
		select {
		case r := <-results:
			asking[r.node]()
			delete(asking, r.node)
			if r.err != nil {
				errs = append(errs, r.err)
				continue
			}
			held++
		case <-watch.C:
			live := map[string]bool{a.deps.Self.ID: true}
			for _, p := range a.deps.Peers() {
				live[p.ID] = true
			}
			for node, stop := range asking {
				if !live[node] {
					stop()
				}
			}
		case <-ctx.Done():
			a.failures.Inc()
			return fmt.Errorf("%w: %d of %d nodes hold manifest %s: %w", ErrTooFewCopies, held, need, id, ctx.Err())
		}
	}
	for _, stop := range asking {
		stop()
	}
	a.waits.Observe(time.Since(start).Seconds())
	return nil
}

// order is who to ask: the nodes placement gives the manifest to first (a
// copy there is one the syncer would make anyway, not an extra), the
// nearest of another region before the rest; then the other peers nearest
// first; then this node when it lacks the push (its NAR was staged on
// another node).
func (a *Acker) order(id chunkstore.ManifestID, peers []placement.Node, self bool) []placement.Node {
	holds := map[string]bool{}
	if a.cfg.CopiesPerRegion != placement.All {
		for _, h := range placement.Holders(id[:], append([]placement.Node{a.deps.Self}, peers...), a.cfg.CopiesPerRegion) {
			holds[h.ID] = true
		}
	}
	placed := func(p placement.Node) bool { return a.cfg.CopiesPerRegion == placement.All || holds[p.ID] }
	out := make([]placement.Node, 0, len(peers)+1)
	taken := map[string]bool{}
	take := func(ok func(placement.Node) bool, first bool) {
		for _, p := range peers {
			if !taken[p.ID] && ok(p) {
				taken[p.ID] = true
				out = append(out, p)
				if first {
					return
				}
			}
		}
	}
	take(func(p placement.Node) bool { return placed(p) && p.Region != a.deps.Self.Region }, true)
	take(placed, false)
	take(func(p placement.Node) bool { return p.Region != a.deps.Self.Region }, true)
	take(func(placement.Node) bool { return true }, false)
	if self {
		out = append(out, a.deps.Self)
	}
	return out
}

// copyTo makes node n hold the manifest of req: through the local Copier
// for this node, a copy request for a peer.
func (a *Acker) copyTo(ctx context.Context, n placement.Node, req copyRequest) error {
	if n.ID == a.deps.Self.ID {
		id, err := chunkstore.ParseManifestID(req.Manifest)
		if err == nil {
			_, err = a.deps.Local.CopyManifest(ctx, id)
		}
		return err
	}
	pid, err := peer.Decode(n.ID)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.ID, err)
	}
	var r copyReply
	if err := p2p.Call(ctx, a.deps.Host, pid, CopyProtocol, req, &r); err != nil {
		return fmt.Errorf("node %s: %w", n.ID, err)
	}
	if r.Error != "" {
		return fmt.Errorf("node %s: %s", n.ID, r.Error)
	}
	return nil
}
