package main

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestPprofListen: the profiler serves on a loopback address beside the
// node, and any other address is refused in one line before the node starts.
func TestPprofListen(t *testing.T) {
	cfg := writeConfig(t, filepath.Join(t.TempDir(), "data"), "")
	for _, addr := range []string{"0.0.0.0:6060", "192.0.2.1:6060", "example.com:6060", "6060"} {
		_, stderr, code := run(t, command(t, "garretd", nil, "-f", cfg, "--pprof-listen", addr))
		oneLine(t, addr, stderr, code, "--pprof-listen")
	}
	srv := command(t, "garretd", nil, "-f", cfg, "--pprof-listen", "127.0.0.1:0")
	out := startUntil(t, srv, "node started")
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	m := regexp.MustCompile(`profiler listening" addr=(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no profiler address in the log:\n%s", out.String())
	}
	resp, err := http.Get("http://" + m[1] + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", resp.StatusCode, b)
	}
}
