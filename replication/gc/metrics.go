package gc

import "github.com/prometheus/client_golang/prometheus"

// metrics are the collector's series; a nil *metrics records nothing.
type metrics struct {
	runs                                               *prometheus.CounterVec
	expired, manifests, chunks, bytes, diskBytes, drop prometheus.Counter
	last, duration, pending                            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "garret", Subsystem: "gc", Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "garret", Subsystem: "gc", Name: name, Help: help})
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "garret", Subsystem: "gc", Name: "runs_total",
			Help: "Garbage collection passes on this node, by result: ok, skipped (the catalog could not be confirmed current) or failed."}, []string{"result"}),
		expired:   counter("objects_expired_total", "Objects retention removed from the catalog in passes this node ran (the leader's)."),
		manifests: counter("manifests_deleted_total", "Manifests no catalog object or file references any more, deleted from this node's store."),
		chunks:    counter("chunks_deleted_total", "Chunks no remaining manifest references, deleted from this node's store."),
		bytes:     counter("bytes_freed_total", "Frame bytes of the deleted chunks."),
		diskBytes: counter("disk_bytes_freed_total", "Disk space given back by compacting or removing segment files."),
		drop:      counter("accesses_dropped_total", "Downloads not recorded for retention because the pending set was full."),
		last:      gauge("last_run_timestamp_seconds", "When the last garbage collection pass on this node ended (Unix time)."),
		duration:  gauge("last_run_duration_seconds", "How long the last garbage collection pass on this node took."),
		pending:   gauge("accesses_pending", "Distinct downloads waiting to be folded into the catalog."),
	}
	for _, r := range []string{"ok", "skipped", "failed"} {
		m.runs.WithLabelValues(r) // every result appears from the start
	}
	for _, c := range []prometheus.Collector{m.runs, m.expired, m.manifests, m.chunks, m.bytes, m.diskBytes, m.drop, m.last, m.duration, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) record(r Run) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case r.Skipped:
		result = "skipped"
	case r.Err != "":
		result = "failed"
	}
	m.runs.WithLabelValues(result).Inc()
	m.expired.Add(float64(r.ObjectsExpired))
	m.manifests.Add(float64(r.ManifestsDeleted))
	m.chunks.Add(float64(r.ChunksDeleted))
	m.bytes.Add(float64(r.BytesFreed))
	m.diskBytes.Add(float64(r.DiskBytesFreed))
	m.last.Set(float64(r.Started.Add(r.Duration).UnixNano()) / 1e9)
	m.duration.Set(r.Duration.Seconds())
}

func (m *metrics) droppedAccess() {
	if m != nil {
		m.drop.Inc()
	}
}

func (m *metrics) setPending(n int) {
	if m != nil {
		m.pending.Set(float64(n))
	}
}
