package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/garret-cache/garret/api/v1"
)

// useTestServer makes the server at url the default one of a fresh client
// config, with token T.
func useTestServer(t *testing.T, url string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	_ = os.MkdirAll(filepath.Join(dir, "garret"), 0o700)
	cfg := "default-server = \"c\"\n[servers.c]\nendpoint = \"" + url + "\"\ntoken = \"T\"\n"
	if err := os.WriteFile(filepath.Join(dir, "garret", "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClusterScrub_Command: the request carries the token and the rate in
// bytes per second (none by default); a negative rate is refused before
// any request.
func TestClusterScrub_Command(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+strings.TrimSpace(string(b)))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"node":"eu-1","chunks":3,"bytes":300,"bad":0}`)
	}))
	defer srv.Close()
	useTestServer(t, srv.URL)
	run := func(args ...string) error {
		cmd := rootCmd()
		cmd.SetArgs(append([]string{"cluster", "scrub"}, args...))
		return cmd.Execute()
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := run("--rate", "64", "--json"); err != nil {
		t.Fatal(err)
	}
	if err := run("--rate", "-1"); err == nil {
		t.Fatal("a negative rate was accepted")
	}
	want := []string{
		`POST /_api/v1/cluster/scrub bearer T {}`,
		`POST /_api/v1/cluster/scrub bearer T {"rate":67108864}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPrintScrub(t *testing.T) {
	var b bytes.Buffer
	printScrub(&b, v1.ClusterScrubResponse{Node: "eu-1", Chunks: 10, Bytes: 3 << 20, TookMs: 1500})
	if out := b.String(); !strings.Contains(out, "eu-1: 10 chunks, 3.0 MiB checked in 1.5 s") || !strings.Contains(out, "No bad chunks") {
		t.Fatalf("clean:\n%s", out)
	}
	b.Reset()
	printScrub(&b, v1.ClusterScrubResponse{Node: "eu-1", Chunks: 10, Bad: 2, Repaired: 1, Unrepaired: 1, BadChunks: []string{"aa", "bb"}})
	out := b.String()
	for _, want := range []string{"2 bad chunk(s) dropped: 1 repaired from peers, 1 not repaired", "   aa\n", "   bb\n", "no peer had"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bad chunks: output lacks %q:\n%s", want, out)
		}
	}
}

// TestClusterGC_Command: the request carries the token; the answer is
// printed; a failed pass is the command's error.
func TestClusterGC_Command(t *testing.T) {
	var got []string
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, `{"code":503,"error":"GarbageCollectionFailed","message":"Garbage collection did not complete: no leader"}`)
			return
		}
		_, _ = io.WriteString(w, `{"node":"eu-1","objects_expired":2,"manifests_deleted":2,"chunks_deleted":5,"bytes_freed":1048576}`)
	}))
	defer srv.Close()
	useTestServer(t, srv.URL)
	run := func(args ...string) error {
		cmd := rootCmd()
		cmd.SetArgs(append([]string{"cluster", "gc"}, args...))
		return cmd.Execute()
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	fail = true
	if err := run(); err == nil || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("a failed pass: %v", err)
	}
	if len(got) != 2 || got[0] != "POST /_api/v1/cluster/gc bearer T" {
		t.Fatalf("requests: %q", got)
	}
	var b bytes.Buffer
	printGC(&b, v1.ClusterGCResponse{Node: "eu-1", ObjectsExpired: 2, ChunksDeleted: 5, BytesFreed: 1 << 20, DiskBytesFreed: 2 << 20, SegmentsCompacted: 1})
	for _, want := range []string{"2 objects expired", "5 chunks deleted, 1.0 MiB", "1 segment files compacted, 2.0 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, b.String())
		}
	}
}
