package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
