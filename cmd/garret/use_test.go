package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
)

// TestUse_ClusterNearestFirst: in a cluster, garret use measures every
// node and writes them nearest first with ascending priorities, a netrc
// entry for each host, and replaces its own earlier entries when run again
// (a node that does not answer is left out).
func TestUse_ClusterNearestFirst(t *testing.T) {
	node := func(delay time.Duration) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer T" {
				w.WriteHeader(401)
				return
			}
			time.Sleep(delay)
			_, _ = w.Write([]byte("StoreDir: /nix/store\nPriority: 41\n"))
		}))
	}
	far, near := node(60*time.Millisecond), node(0)
	defer far.Close()
	defer near.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	// far answers the cache config, as a user logged in to the far node.
	prio := int32(41)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, key, upload := far.URL+"/hello", "hello:KEY", far.URL+"/upload/hello"
		_ = json.NewEncoder(w).Encode(v1.CacheConfig{SubstituterEndpoint: &sub, PublicKey: &key, UploadEndpoint: &upload, Priority: &prio,
			Nodes: []v1.CacheNode{{Name: "eu-1", Region: "eu", SubstituterEndpoint: far.URL + "/hello"},
				{Name: "us-1", Region: "us", SubstituterEndpoint: near.URL + "/hello"},
				{Name: "us-2", Region: "us", SubstituterEndpoint: dead.URL + "/hello"}}})
	}))
	defer api.Close()
	useTestServer(t, api.URL)
	conf := filepath.Join(t.TempDir(), "nix.conf")
	t.Setenv("NIX_USER_CONF_FILES", conf)
	_ = os.WriteFile(conf, []byte("substituters = https://mine.example\n"), 0o644)
	for range 2 {
		cmd := rootCmd()
		cmd.SetArgs([]string{"use", "hello"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(conf)
	want := "substituters = " + near.URL + "/hello?priority=41 " + far.URL + "/hello?priority=42 https://mine.example"
	if !strings.Contains(string(b), want+"\n") {
		t.Fatalf("nix.conf:\n%s\nwant the line %q", b, want)
	}
	if strings.Contains(string(b), dead.URL) {
		t.Fatalf("a node that did not answer was written:\n%s", b)
	}
	netrc, _ := os.ReadFile(filepath.Join(filepath.Dir(conf), "netrc"))
	if strings.Count(string(netrc), "machine 127.0.0.1") != 1 || !strings.Contains(string(netrc), "password T") {
		t.Fatalf("netrc (every node on 127.0.0.1: one entry):\n%s", netrc)
	}
}
