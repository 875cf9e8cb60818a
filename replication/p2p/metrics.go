package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
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
