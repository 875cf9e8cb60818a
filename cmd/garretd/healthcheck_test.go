package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestHealthcheck_ExitCodes: garretd healthcheck exits 0 only on a 2xx, adds
// /readyz to a URL without a path, and says in one line what answered
// instead (a 503 with its body, a closed port, a bad URL).
func TestHealthcheck_ExitCodes(t *testing.T) {
	var mu sync.Mutex
	ready := false
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"code":503,"error":"NotReady","message":"Not ready: catalog: no leader known"}`))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}))
	defer srv.Close()

	_, stderr, code := run(t, command(t, "garretd", nil, "healthcheck", srv.URL))
	oneLine(t, "not ready", stderr, code, "503 Service Unavailable")
	if !strings.Contains(stderr, "no leader known") {
		t.Errorf("the node's reason is not shown: %q", stderr)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	stdout, stderr, code := run(t, command(t, "garretd", nil, "healthcheck", srv.URL+"/"))
	if code != 0 || !strings.Contains(stdout, "/readyz: ready") {
		t.Fatalf("ready: exit %d, %q %q", code, stdout, stderr)
	}
	if _, _, code := run(t, command(t, "garretd", nil, "healthcheck", srv.URL+"/healthz")); code != 0 {
		t.Fatalf("an explicit path: exit %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/readyz", "/readyz", "/healthz"}; strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths asked: %v, want %v", paths, want)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	_, stderr, code = run(t, command(t, "garretd", nil, "healthcheck", "--timeout", "2s", closed))
	oneLine(t, "nothing listening", stderr, code, "connection refused")
	_, stderr, code = run(t, command(t, "garretd", nil, "healthcheck", "127.0.0.1:8080"))
	oneLine(t, "no scheme", stderr, code, "is not an http(s) URL")
}

// TestHealthcheck_RealNode: a started lone node is ready by the check the
// compose file runs.
func TestHealthcheck_RealNode(t *testing.T) {
	port := freeAddr(t)
	cfg := writeConfig(t, t.TempDir(), "")
	srv := command(t, "garretd", nil, "-f", cfg, "--listen", port)
	startUntil(t, srv, "node started")
	stdout, stderr, code := run(t, command(t, "garretd", nil, "healthcheck", "http://"+port))
	if code != 0 || !strings.Contains(stdout, "ready") {
		t.Fatalf("healthcheck of a running node: exit %d, %q %q", code, stdout, stderr)
	}
}

// freeAddr is a 127.0.0.1 address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
