package syncer

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the syncer's counters (Stats) as garret_syncer_*.
func (s *Syncer) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Syncer }

var (
	descFetched = prometheus.NewDesc("garret_syncer_manifests_fetched_total", "Manifests this node made complete by copying from peers.", nil, nil)
	descFrames  = prometheus.NewDesc("garret_syncer_frames_total", "Chunk frames copied from peers.", nil, nil)
	descBytes   = prometheus.NewDesc("garret_syncer_frame_bytes_total", "Bytes of chunk frames copied from peers.", nil, nil)
	descFailed  = prometheus.NewDesc("garret_syncer_failures_total", "Copies that failed and wait to be retried.", nil, nil)
	descPending = prometheus.NewDesc("garret_syncer_pending", "Manifests waiting to be copied or retried.", nil, nil)
	descBacklog = prometheus.NewDesc("garret_syncer_backlog_bytes", "Stored bytes of the objects this node should hold and does not yet (where known).", nil, nil)
	descLag     = prometheus.NewDesc("garret_syncer_lag_seconds", "Age of the oldest object this node should hold and does not yet (0: none).", nil, nil)
	descScan    = prometheus.NewDesc("garret_syncer_scanning", "1 while the node reads the whole catalog for what it lacks.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFetched, descFrames, descBytes, descFailed, descPending, descBacklog, descLag, descScan} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descFetched, prometheus.CounterValue, float64(st.Fetched))
	ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(st.FramesStored))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.FrameBytes))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.Failed))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
	rs := c.s.Status()
	ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(rs.BacklogBytes))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, rs.LagSeconds)
	scanning := 0.0
	if rs.Scanning {
		scanning = 1
	}
	ch <- prometheus.MustNewConstMetric(descScan, prometheus.GaugeValue, scanning)
}
