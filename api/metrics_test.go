package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/narinfo"
)

// requestSeries counts the garret_http_requests_total series on /metrics.
func (e *testEnv) requestSeries() int {
	e.t.Helper()
	st, b := e.do("GET", "/metrics", "", nil, nil)
	if st != 200 {
		e.t.Fatalf("/metrics: %d", st)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "garret_http_requests_total{") {
			n++
		}
	}
	return n
}

func TestMetrics_JunkPathsAddNoSeries(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("c", true)
	// Warm up the series legitimate junk falls into (unmatched, other method).
	e.do("GET", "/_api/v1/warmup", "", nil, nil)
	e.do("BREW", "/_api/v1/warmup", "", nil, nil)
	e.do("GET", "/c/nix-cache-info", "", nil, nil)
	before := e.requestSeries()
	for i := range 200 {
		e.do("GET", fmt.Sprintf("/_api/v1/junk%d/x", i), "", nil, nil)
		e.do(fmt.Sprintf("M%d", i), fmt.Sprintf("/_api/v1/m%d", i), "", nil, nil)
		e.do("GET", fmt.Sprintf("/c%d/nix-cache-info", i), "", nil, nil)
	}
	// /metrics itself adds its own series once.
	if after := e.requestSeries(); after > before+2 {
		t.Fatalf("600 junk requests grew garret_http_requests_total from %d to %d series", before, after)
	}
}

func TestMetrics_InvalidUTF8PathIsAnError(t *testing.T) {
	e := newTestEnv(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for range 2 { // the connection survives the first request
		if _, err := io.WriteString(conn, "GET /_api/v1/%FF HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response (did the handler panic?): %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("GET /_api/v1/%%FF: %d, want a 4xx", resp.StatusCode)
		}
	}
}

// metricValues gathers the API's registry as "name{label=value,…}" → value
// (counters and gauges; histograms as their sample count).
func (e *testEnv) metricValues() map[string]float64 {
	e.t.Helper()
	mfs, err := e.api.metrics.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetrics_TrafficPushesAndLatency: pushes through both APIs count as
// uploaded or deduplicated, bytes in and out are counted per route,
// narinfo and NAR GETs have their own latency series (apart from their
// PUTs), and a request refused before routing (oversized headers) is counted.
func TestMetrics_TrafficPushesAndLatency(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := dirNAR("m", "n", "o")
	info := uploadInfo("main", "metrics-1.0", nar)
	for i := range 2 { // uploaded, then deduplicated
		if st, b := e.upload(e.root, info, nar); st != 200 {
			t.Fatalf("upload %d: %d %s", i, st, b)
		}
	}
	h, p := testPath("metrics-nix")
	url := "nar/" + strings.Repeat("2", 52) + ".nar"
	if st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(nar), nil); st != 200 {
		t.Fatalf("PUT nar: %d %s", st, b)
	}
	ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: "none", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
	for i := range 2 { // the NAR staged, then the narinfo alone again
		if st, b := e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 200 {
			t.Fatalf("PUT narinfo %d: %d %s", i, st, b)
		}
	}
	st, niBody := e.do("GET", "/main/"+h+".narinfo", e.root, nil, nil)
	if st != 200 {
		t.Fatalf("GET narinfo: %d", st)
	}
	st, narBody := e.do("GET", "/main/nar/"+h+".nar", e.root, nil, nil)
	if st != 200 {
		t.Fatalf("GET nar: %d", st)
	}
	if st, _ := e.do("GET", "/main/"+h+".narinfo", e.root, nil, map[string]string{"X-Big": strings.Repeat("x", MaxHeaderBytes)}); st != 431 {
		t.Fatalf("oversized headers: %d", st)
	}

	got := e.metricValues()
	want := map[string]float64{
		"garret_pushes_total{api=attic,result=uploaded}":     1,
		"garret_pushes_total{api=attic,result=deduplicated}": 1,
		"garret_pushes_total{api=nix,result=uploaded}":       1,
		"garret_pushes_total{api=nix,result=deduplicated}":   1,
		// Latency by route and method: narinfo GET and PUT apart, NAR GET apart.
		"garret_http_request_duration_seconds{method=GET,route=/{cache}/{hash}.narinfo}": 1,
		"garret_http_request_duration_seconds{method=PUT,route=/{cache}/{hash}.narinfo}": 2,
		"garret_http_request_duration_seconds{method=GET,route=/{cache}/nar/{file}}":     1,
		"garret_http_request_duration_seconds{method=PUT,route=/{cache}/nar/{file}}":     1,
		"garret_http_requests_total{code=200,method=GET,route=/{cache}/{hash}.narinfo}":  1,
		"garret_http_requests_total{code=431,method=GET,route=unmatched}":                1,
		// Bytes: what the server wrote for the GETs, and the NAR PUT's body.
		"garret_http_response_body_bytes_total{route=/{cache}/{hash}.narinfo}": float64(len(niBody)),
		"garret_http_response_body_bytes_total{route=/{cache}/nar/{file}}":     float64(len(narBody)),
		"garret_http_request_body_bytes_total{route=/{cache}/nar/{file}}":      float64(len(nar)),
		"garret_http_request_body_bytes_total{route=/_api/v1/upload-path}":     float64(2 * len(nar)),
		// Ingest: three NARs read (two Attic uploads, one Nix PUT), the
		// last two entirely chunks already stored.
		"garret_ingest_nar_bytes_total{}": float64(3 * len(nar)),
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (exported: %v), want %v", k, g, ok, v)
		}
	}
	if got["garret_ingest_dedup_chunks_total{}"] < 2 || got["garret_ingest_dedup_bytes_total{}"] != float64(2*len(nar)) {
		t.Errorf("dedup: %v chunks, %v bytes; want ≥ 2 and %d", got["garret_ingest_dedup_chunks_total{}"],
			got["garret_ingest_dedup_bytes_total{}"], 2*len(nar))
	}
	if v := got["garret_http_request_body_bytes_total{route=/{cache}/{hash}.narinfo}"]; v != float64(2*len(ni.String())) {
		t.Errorf("narinfo PUT bodies: %v bytes, want %d", v, 2*len(ni.String()))
	}
}

// TestRouteLabel: /{cache}/{file} splits into narinfo, listing and other
// files; nothing from the path itself becomes a label.
func TestRouteLabel(t *testing.T) {
	mux := http.NewServeMux()
	var got string
	mux.HandleFunc("GET /{cache}/{file}", func(_ http.ResponseWriter, r *http.Request) { got = routeLabel(r) })
	mux.HandleFunc("GET /{cache}/nar/{file}", func(_ http.ResponseWriter, r *http.Request) { got = routeLabel(r) })
	for path, want := range map[string]string{
		"/c/" + strings.Repeat("a", 32) + ".narinfo": "/{cache}/{hash}.narinfo",
		"/c/whatever.narinfo":                        "/{cache}/{hash}.narinfo",
		"/c/" + strings.Repeat("a", 32) + ".ls":      "/{cache}/{hash}.ls",
		"/c/random-file":                             "/{cache}/{file}",
		"/c/nar/x.nar.xz":                            "/{cache}/nar/{file}",
	} {
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
		if got != want {
			t.Errorf("%s: route %q, want %q", path, got, want)
		}
	}
	if l := routeLabel(httptest.NewRequest("GET", "/never-routed", nil)); l != "unmatched" {
		t.Errorf("unrouted request: %q", l)
	}
}
