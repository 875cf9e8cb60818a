package syncer

import (
	"context"
	"encoding/json"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/p2p"
)

// StatusProtocol answers a node's ReplicationStatus (garret cluster status).
const StatusProtocol protocol.ID = "/garret/sync-status/1"

// statusTimeout bounds one status exchange.
const statusTimeout = 2 * time.Second

// Status is what this node still has to copy, how old it is, and how fast
// it copies.
func (s *Syncer) Status() v1.ReplicationStatus {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := v1.ReplicationStatus{Backlog: len(s.waiting), Scanning: s.scanning, Scanned: s.scanned,
		FetchBytesPerSecond: s.rate.perSecond(now),
		Fetched:             s.stats.Fetched, FrameBytes: s.stats.FrameBytes, Failed: s.stats.Failed}
	var oldest time.Time
	for _, d := range s.waiting {
		st.BacklogBytes += d.size
		if oldest.IsZero() || d.since.Before(oldest) {
			oldest = d.since
		}
	}
	if !oldest.IsZero() {
		st.LagSeconds = max(0, now.Sub(oldest).Seconds())
	}
	return st
}

// ServeStatus answers other nodes' status requests with s.Status().
func (s *Syncer) ServeStatus(h host.Host) {
	h.SetStreamHandler(StatusProtocol, func(st network.Stream) {
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(statusTimeout))
		_ = json.NewEncoder(st).Encode(s.Status())
	})
}

// QueryStatus asks node id for its replication status.
func QueryStatus(ctx context.Context, h host.Host, id string) (v1.ReplicationStatus, error) {
	var st v1.ReplicationStatus
	pid, err := peer.Decode(id)
	if err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	err = p2p.Call(ctx, h, pid, StatusProtocol, nil, &st)
	return st, err
}

// rate is bytes per second over the last minute, in one-second buckets.
type rate struct {
	buckets [60]int64
	at      [60]int64 // the unix second each bucket holds
}

func (r *rate) add(now time.Time, n int64) {
	sec := now.Unix()
	i := sec % int64(len(r.buckets))
	if r.at[i] != sec {
		r.at[i], r.buckets[i] = sec, 0
	}
	r.buckets[i] += n
}

func (r *rate) perSecond(now time.Time) float64 {
	sec := now.Unix()
	var sum int64
	for i := range r.buckets {
		if sec-r.at[i] < int64(len(r.buckets)) {
			sum += r.buckets[i]
		}
	}
	return float64(sum) / float64(len(r.buckets))
}
