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
	reg       Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	bytesIn   *prometheus.CounterVec // request bodies, by route
	bytesOut  *prometheus.CounterVec // response bodies, by route
	pushes    *prometheus.CounterVec // committed pushes, by API and whether the NAR was new
	narBytes  prometheus.Counter
	newChunks prometheus.Counter
	dedupRaw  prometheus.Counter
	dedupHits prometheus.Counter // chunks an ingest found already stored
	// NARs served with chunks read from peers, and those chunks.
	readThrough       prometheus.Counter
	readThroughChunks prometheus.Counter
}

func newMetrics(reg Registry) *metrics {
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		reg = r
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garret_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "garret_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method (a NAR GET and its PUT apart).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garret_http_request_body_bytes_total", Help: "Request body bytes read, by route pattern (uploads as sent, compressed or not).",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garret_http_response_body_bytes_total", Help: "Response body bytes written, by route pattern.",
		}, []string{"route"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garret_pushes_total",
			Help: "Store paths committed by pushes, by API (attic: upload-path; nix: narinfo PUT) and result " +
				"(uploaded: a NAR was sent and stored; deduplicated: the cache already held the path with that NAR, or Nix sent no NAR because this node had it).",
		}, []string{"api", "result"}),
		narBytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_nar_bytes_total", Help: "Uncompressed NAR bytes ingested."}),
		newChunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_new_chunks_total", Help: "Chunks stored by ingests."}),
		dedupRaw:  prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_dedup_bytes_total", Help: "Uncompressed bytes that were already stored."}),
		dedupHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_ingest_dedup_chunks_total", Help: "Chunks of ingested NARs that were already stored."}),
	}
	for _, a := range []string{"attic", "nix"} {
		for _, r := range []string{"uploaded", "deduplicated"} {
			m.pushes.WithLabelValues(a, r) // every series from the start, so rates have no gaps
		}
	}
	m.readThrough = prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_nar_read_through_total",
		Help: "NARs served with chunks this node did not hold, read from peers (0 growth: every byte came from this node's store)."})
	m.readThroughChunks = prometheus.NewCounter(prometheus.CounterOpts{Name: "garret_nar_read_through_chunks_total",
		Help: "Chunks of served NARs read from peers."})
	m.reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.pushes, m.narBytes, m.newChunks, m.dedupRaw, m.dedupHits,
		m.readThrough, m.readThroughChunks)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// routeLabel is the route a request matched: the ServeMux pattern without
// its method ("/{cache}/nar/{file}"), so the label set is the route table
// and nothing a client sends. "/{cache}/{file}" is split by the two kinds
// of file it serves, so narinfo latency stands apart:
// "/{cache}/{hash}.narinfo", "/{cache}/{hash}.ls", and "/{cache}/{file}"
// for anything else. The catch-all "/" is "unmatched", and so is a request
// refused before the mux saw it (bad headers, Host, token).
func routeLabel(r *http.Request) string {
	p := r.Pattern
	if _, rest, ok := strings.Cut(p, " "); ok {
		p = rest
	}
	switch {
	case p == "" || p == "/":
		return "unmatched"
	case p == "/{cache}/{file}":
		switch file := r.PathValue("file"); {
		case strings.HasSuffix(file, ".narinfo"):
			return "/{cache}/{hash}.narinfo"
		case strings.HasSuffix(file, ".ls"):
			return "/{cache}/{hash}.ls"
		}
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

// observe records one finished request: its count, latency and the body
// bytes read and written.
func (m *metrics) observe(r *http.Request, status int, d time.Duration, in, out int64) {
	route, method := routeLabel(r), methodLabel(r.Method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
	if in > 0 {
		m.bytesIn.WithLabelValues(route).Add(float64(in))
	}
	if out > 0 {
		m.bytesOut.WithLabelValues(route).Add(float64(out))
	}
}

// pushed records a committed push: api is "attic" or "nix"; uploaded
// whether a NAR was sent and stored for it.
func (m *metrics) pushed(api string, uploaded bool) {
	result := "deduplicated"
	if uploaded {
		result = "uploaded"
	}
	m.pushes.WithLabelValues(api, result).Inc()
}

func (m *metrics) ingested(in *ingested) {
	m.narBytes.Add(float64(in.narSize))
	m.newChunks.Add(float64(in.res.NewChunks))
	m.dedupRaw.Add(float64(in.res.DedupRawBytes))
	m.dedupHits.Add(float64(in.res.DedupChunks))
}
