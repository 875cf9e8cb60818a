package p2p

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource limits of a node's libp2p host, sized for a cluster of tens of
// nodes where a chunk fetch keeps several streams to one peer in flight.
// A peer (even one holding the cluster secret) that opens more is refused;
// the node's own callers wait for a slot (OpenStream, Call).
const (
	// MaxConns is the node's connection limit (one or two per peer).
	MaxConns = 256
	// MaxConnsPerPeer is the connection limit per peer.
	MaxConnsPerPeer = 8
	// MaxStreamsPerPeer is how many streams one peer may have open in each
	// direction, over all protocols.
	MaxStreamsPerPeer = 256
	// MaxStreamsPerPeerProtocol is the per-direction stream limit of one peer
	// on one protocol other than Raft's and chunk exchange: a follower's
	// forwarded writes in flight at once, at WAN round trips, set its size.
	MaxStreamsPerPeerProtocol = 128
	// MaxChunkStreamsPerPeer is the per-direction stream limit of one peer
	// on ChunkProtocol (a NAR fetch runs up to a few dozen requests at once).
	MaxChunkStreamsPerPeer = 64
	// MaxRaftStreamsPerPeer is the per-direction stream limit of one peer on
	// RaftProtocol (the transport pools 3, plus pipelining and snapshots).
	MaxRaftStreamsPerPeer = 16
	// MaxMemory bounds the memory libp2p reserves (mostly yamux receive
	// windows) for the whole node; MaxMemoryPerPeer for one peer.
	MaxMemory        = 512 << 20
	MaxMemoryPerPeer = 64 << 20
	// SlotWait is how long OpenStream and Call wait for a stream slot when a
	// limit (this node's or the peer's) refuses one.
	SlotWait = 5 * time.Second
)

func newResourceManager(metrics prometheus.Registerer) (network.ResourceManager, error) {
	const fds = 4 * MaxConns
	peerLimit := rcmgr.ResourceLimits{
		Conns: MaxConnsPerPeer, ConnsInbound: MaxConnsPerPeer, ConnsOutbound: MaxConnsPerPeer,
		Streams: 2 * MaxStreamsPerPeer, StreamsInbound: MaxStreamsPerPeer, StreamsOutbound: MaxStreamsPerPeer,
		Memory: MaxMemoryPerPeer, FD: MaxConnsPerPeer,
	}
	perProto := func(n int) rcmgr.ResourceLimits {
		return rcmgr.ResourceLimits{Streams: rcmgr.LimitVal(2 * n), StreamsInbound: rcmgr.LimitVal(n), StreamsOutbound: rcmgr.LimitVal(n),
			Memory: MaxMemoryPerPeer}
	}
	total := func(n int) rcmgr.ResourceLimits {
		return rcmgr.ResourceLimits{Streams: rcmgr.LimitVal(2 * n), StreamsInbound: rcmgr.LimitVal(n), StreamsOutbound: rcmgr.LimitVal(n),
			Memory: MaxMemory}
	}
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: MaxConns, ConnsInbound: MaxConns, ConnsOutbound: MaxConns,
			Streams: 2 * MaxConns * 32, StreamsInbound: MaxConns * 32, StreamsOutbound: MaxConns * 32,
			Memory: MaxMemory, FD: fds,
		},
		// Connections and streams not yet tied to a peer and protocol.
		Transient: rcmgr.ResourceLimits{
			Conns: MaxConns / 4, ConnsInbound: MaxConns / 4, ConnsOutbound: MaxConns / 4,
			Streams: 512, StreamsInbound: 256, StreamsOutbound: 256, Memory: MaxMemory / 8, FD: fds / 4,
		},
		PeerDefault:         peerLimit,
		ProtocolDefault:     total(16 * MaxStreamsPerPeerProtocol),
		ProtocolPeerDefault: perProto(MaxStreamsPerPeerProtocol),
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{
			ChunkProtocol: total(32 * MaxChunkStreamsPerPeer),
			RaftProtocol:  total(32 * MaxRaftStreamsPerPeer),
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			ChunkProtocol: perProto(MaxChunkStreamsPerPeer),
			RaftProtocol:  perProto(MaxRaftStreamsPerPeer),
		},
	}
	var opts []rcmgr.Option
	if metrics != nil {
		rcmgr.MustRegisterWith(metrics)
		str, err := rcmgr.NewStatsTraceReporter()
		if err != nil {
			return nil, fmt.Errorf("p2p: resource manager metrics: %w", err)
		}
		opts = append(opts, rcmgr.WithTraceReporter(str))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg.Build(rcmgr.DefaultLimits.AutoScale())), opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return rm, nil
}

// Refused reports whether err is a resource limit's refusal of a stream,
// this node's or the peer's: the peer's handler never ran, so the exchange
// may be tried again.
func Refused(err error) bool {
	var se *network.StreamError
	return errors.Is(err, network.ErrResourceLimitExceeded) ||
		errors.As(err, &se) && se.ErrorCode == network.StreamResourceLimitExceeded
}

// waitSlot sleeps before attempt number try (from 1) at a refused stream,
// and fails once ctx ends or SlotWait has passed since start.
func waitSlot(ctx context.Context, start time.Time, try int, err error) error {
	d := min(10*time.Millisecond<<min(try, 5), 250*time.Millisecond)
	if time.Since(start)+d > SlotWait {
		return fmt.Errorf("p2p: no stream slot after %s: %w", SlotWait, err)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("p2p: waiting for a stream slot: %w (%w)", ctx.Err(), err)
	case <-t.C:
		return nil
	}
}

// OpenStream opens a stream to p, waiting (up to SlotWait or ctx) while a
// resource limit refuses it.
func OpenStream(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID) (network.Stream, error) {
	start := time.Now()
	for try := 1; ; try++ {
		s, err := h.NewStream(ctx, p, proto)
		if err == nil || !Refused(err) {
			return s, err
		}
		if werr := waitSlot(ctx, start, try, err); werr != nil {
			return nil, werr
		}
	}
}
