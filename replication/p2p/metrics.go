package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// peerBytes reports the bytes exchanged with each connected peer
// (garret_p2p_peer_bytes_total{peer, direction}). Only peers connected at
// scrape time are reported, so the label set is bounded by the resource
// manager's connection limit; the counter forgets peers idle for an hour.
type peerBytes struct {
	h    host.Host
	bwc  *metrics.BandwidthCounter
	desc *prometheus.Desc
}

func newPeerBytes(bwc *metrics.BandwidthCounter) *peerBytes {
	return &peerBytes{bwc: bwc, desc: prometheus.NewDesc("garret_p2p_peer_bytes_total",
		"Bytes exchanged over libp2p streams with each connected peer.", []string{"peer", "direction"}, nil)}
}

func (p *peerBytes) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *peerBytes) Collect(ch chan<- prometheus.Metric) {
	if p.h == nil {
		return
	}
	p.bwc.TrimIdle(time.Now().Add(-time.Hour))
	for _, id := range p.h.Network().Peers() {
		st := p.bwc.GetBandwidthForPeer(id)
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, float64(st.TotalIn), id.String(), "in")
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, float64(st.TotalOut), id.String(), "out")
	}
}

// maxFailingPeers bounds the peers PeerFailures keeps counts for.
const maxFailingPeers = 256

// PeerFailures counts, per peer, the requests for chunks and manifests that
// failed (no answer, a broken stream, a bad manifest), as
// garret_p2p_peer_failures_total{peer}. It keeps at most maxFailingPeers
// peers, forgetting the one with the fewest failures first, so a churn of
// peer IDs cannot grow it. A nil *PeerFailures counts nothing.
type PeerFailures struct {
	mu   sync.Mutex
	n    map[peer.ID]uint64
	desc *prometheus.Desc
}

// NewPeerFailures makes an empty count; register it on the node's registry.
func NewPeerFailures() *PeerFailures {
	return &PeerFailures{n: map[peer.ID]uint64{}, desc: prometheus.NewDesc("garret_p2p_peer_failures_total",
		"Failed chunk and manifest requests to each peer.", []string{"peer"}, nil)}
}

func (pf *PeerFailures) add(p peer.ID) {
	if pf == nil {
		return
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if _, ok := pf.n[p]; !ok && len(pf.n) >= maxFailingPeers {
		var least peer.ID
		for id, c := range pf.n {
			if least == "" || c < pf.n[least] {
				least = id
			}
		}
		delete(pf.n, least)
	}
	pf.n[p]++
}

// Describe implements prometheus.Collector.
func (pf *PeerFailures) Describe(ch chan<- *prometheus.Desc) { ch <- pf.desc }

// Collect implements prometheus.Collector.
func (pf *PeerFailures) Collect(ch chan<- prometheus.Metric) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	for id, c := range pf.n {
		ch <- prometheus.MustNewConstMetric(pf.desc, prometheus.CounterValue, float64(c), id.String())
	}
}
