package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's Prometheus series, on a registry of the server's own
// so several nodes can run in one test process.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	narBytes  prometheus.Counter
	newChunks prometheus.Counter
	dedupRaw  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garret_http_requests_total", Help: "HTTP requests by route kind, method and status.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "garret_http_request_duration_seconds", Help: "HTTP request latency by route kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		narBytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_nar_bytes_total", Help: "Uncompressed NAR bytes ingested."}),
		newChunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_new_chunks_total", Help: "Chunks stored by ingests."}),
		dedupRaw:  prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_dedup_bytes_total", Help: "Uncompressed bytes that were already stored."}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.narBytes, m.newChunks, m.dedupRaw,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Registry lets the node add its components' collectors to /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// routeKind buckets paths into a few labels (cache names are unbounded).
func routeKind(path string) string {
	switch {
	case strings.HasPrefix(path, "/_api/v1/"):
		p := strings.TrimPrefix(path, "/_api/v1/")
		if i := strings.IndexByte(p, '/'); i >= 0 {
			p = p[:i]
		}
		return "api:" + p
	case strings.HasSuffix(path, ".narinfo"):
		return "narinfo"
	case strings.Contains(path, "/nar/"):
		return "nar"
	case strings.HasSuffix(path, "/nix-cache-info"):
		return "nix-cache-info"
	}
	return "other"
}

func (m *metrics) observe(r *http.Request, status int, d time.Duration) {
	kind := routeKind(r.URL.Path)
	m.requests.WithLabelValues(kind, r.Method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(kind).Observe(d.Seconds())
}

func (m *metrics) ingested(in *ingested) {
	m.narBytes.Add(float64(in.narSize))
	m.newChunks.Add(float64(in.res.NewChunks))
	m.dedupRaw.Add(float64(in.res.DedupRawBytes))
}
