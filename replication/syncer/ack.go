package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

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

type copyRequest struct {
	Manifest string `json:"manifest"`
}

type copyReply struct {
	Error string `json:"error,omitempty"`
}

// ServeCopies answers other nodes' copy requests. copier(from) is the
// Copier for a request from peer from, one that asks from first.
func ServeCopies(h host.Host, copier func(from peer.ID) *Copier, log *slog.Logger) {
	slots := make(chan struct{}, maxCopiesServed)
	h.SetStreamHandler(CopyProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(MaxCopyTime))
		var req copyRequest
		if err := json.NewDecoder(io.LimitReader(s, 512)).Decode(&req); err != nil {
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
		if _, err := copier(from).CopyManifest(ctx, id); err != nil {
			log.Warn("copy asked by a peer failed", "peer", from, "manifest", id, "err", err)
			answer(err)
			return
		}
		answer(nil)
	})
}

// AckConfig is [cluster] min-copies-before-ack.
type AckConfig struct {
	// Copies is how many nodes, this one included, must hold every chunk of
	// a push before it is acknowledged; at most the live nodes count (a
	// cluster with one node up still takes pushes). 1: no wait.
	Copies int
	Log    *slog.Logger
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
	return &Acker{cfg: cfg, deps: deps,
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

// Ensure returns once min(Copies, live nodes) nodes hold manifest id and
// every chunk it names, or ErrTooFewCopies when the nodes asked could not
// take it within MaxCopyTime.
func (a *Acker) Ensure(ctx context.Context, id chunkstore.ManifestID) error {
	if a.cfg.Copies <= 1 {
		return nil
	}
	start := time.Now()
	peers := a.deps.Peers()
	need := min(a.cfg.Copies, 1+len(peers))
	if need < a.cfg.Copies {
		a.short.Inc()
	}
	held := 0
	local, err := a.deps.Local.Holds(id)
	if err != nil {
		return err
	}
	if local {
		held++
	}
	ask := a.order(peers, !local)
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
			go func() { results <- result{n.ID, a.copyTo(actx, n, id)} }()
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

// order is who to ask: the nearest node of another region, then the other
// peers nearest first, then this node when it lacks the push (its NAR was
// staged on another node).
func (a *Acker) order(peers []placement.Node, self bool) []placement.Node {
	out := make([]placement.Node, 0, len(peers)+1)
	far := -1
	for i, p := range peers {
		if p.Region != a.deps.Self.Region {
			far = i
			out = append(out, p)
			break
		}
	}
	for i, p := range peers {
		if i != far {
			out = append(out, p)
		}
	}
	if self {
		out = append(out, a.deps.Self)
	}
	return out
}

// copyTo makes node n hold manifest id: through the local Copier for this
// node, a copy request for a peer.
func (a *Acker) copyTo(ctx context.Context, n placement.Node, id chunkstore.ManifestID) error {
	if n.ID == a.deps.Self.ID {
		_, err := a.deps.Local.CopyManifest(ctx, id)
		return err
	}
	pid, err := peer.Decode(n.ID)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.ID, err)
	}
	var r copyReply
	if err := p2p.Call(ctx, a.deps.Host, pid, CopyProtocol, copyRequest{Manifest: id.String()}, &r); err != nil {
		return fmt.Errorf("node %s: %w", n.ID, err)
	}
	if r.Error != "" {
		return fmt.Errorf("node %s: %s", n.ID, r.Error)
	}
	return nil
}
