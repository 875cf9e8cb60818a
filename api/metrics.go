package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's Prometheus series, on the node's registry (or one of
// the server's own), so several nodes can run in one test process.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	narBytes  prometheus.Counter
	newChunks prometheus.Counter
	dedupRaw  prometheus.Counter
	// NARs served with chunks read from peers, and those chunks.
	readThrough       prometheus.Counter
	readThroughChunks prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garret_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "garret_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		narBytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_nar_bytes_total", Help: "Uncompressed NAR bytes ingested."}),
		newChunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_new_chunks_total", Help: "Chunks stored by ingests."}),
		dedupRaw:  prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_dedup_bytes_total", Help: "Uncompressed bytes that were already stored."}),
	}
	m.readThrough = prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_nar_read_through_total",
		Help: "NARs served with chunks this node did not hold, read from peers (0 growth: every byte came from this node's store)."})
	m.readThroughChunks = prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_nar_read_through_chunks_total",
		Help: "Chunks of served NARs read from peers."})
	m.reg.MustRegister(m.requests, m.latency, m.narBytes, m.newChunks, m.dedupRaw, m.readThrough, m.readThroughChunks)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// routeLabel is the route a request matched: the ServeMux pattern without
// its method ("/{cache}/nar/{file}"), so the label set is the route table
// and nothing a client sends. The catch-all "/" is "unmatched", and so is a
// request refused before the mux saw it.
func routeLabel(r *http.Request) string {
	p := r.Pattern
	if _, rest, ok := strings.Cut(p, " "); ok {
		p = rest
	}
	if p == "" || p == "/" {
		return "unmatched"
	}
	return p
}

// methodLabel is the request's method if it is one the API knows, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

func (m *metrics) observe(r *http.Request, status int, d time.Duration) {
	route := routeLabel(r)
	m.requests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) ingested(in *ingested) {
	m.narBytes.Add(float64(in.narSize))
	m.newChunks.Add(float64(in.res.NewChunks))
	m.dedupRaw.Add(float64(in.res.DedupRawBytes))
}
