package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
)

// stdoutOf runs f and returns what it printed to stdout.
func stdoutOf(t *testing.T, f func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	err = f()
	os.Stdout = saved
	_ = w.Close()
	out := <-done
	if err != nil {
		t.Fatalf("%v (printed %s)", err, out)
	}
	return string(out)
}

// TestUse_ClusterNearestFirst: in a cluster, garret use measures every
// node and writes them nearest first with ascending priorities from the
// cache's, a netrc entry for each host written (none for a node that did not
// answer, which is left out, nor for one whose URL nix.conf cannot take),
// prints each node's round trip, and replaces its own earlier entries when
// run again.
func TestUse_ClusterNearestFirst(t *testing.T) {
	node := func(delay time.Duration) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer T" || r.URL.Path != "/hello/nix-cache-info" {
				w.WriteHeader(401)
				return
			}
			time.Sleep(delay)
			_, _ = w.Write([]byte("StoreDir: /nix/store\nPriority: 41\n"))
		}))
	}
	far, near := node(50*time.Millisecond), node(0)
	defer far.Close()
	defer near.Close()
	// The far node by another name than 127.0.0.1, so it needs its own
	// netrc entry; the dead one on another loopback address.
	farURL := strings.Replace(far.URL, "127.0.0.1", "localhost", 1)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	deadURL := strings.Replace(dead.URL, "127.0.0.1", "127.0.0.2", 1)
	// far answers the cache config, as to a user logged in to the far node.
	prio := int32(45)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, key, upload := farURL+"/hello", "hello:KEY", farURL+"/upload/hello"
		_ = json.NewEncoder(w).Encode(v1.CacheConfig{SubstituterEndpoint: &sub, PublicKey: &key, UploadEndpoint: &upload, Priority: &prio,
			Nodes: []v1.CacheNode{{Name: "eu-1", Region: "eu", SubstituterEndpoint: farURL + "/hello"},
				{Name: "us-1", Region: "us", SubstituterEndpoint: near.URL + "/hello"},
				{Name: "us-1-again", Region: "us", SubstituterEndpoint: near.URL + "/hello"},
				{Name: "us-2", Region: "us", SubstituterEndpoint: deadURL + "/hello"},
				{Name: "us-3", Region: "us", SubstituterEndpoint: "http://evil.example/hello\nnetrc-file = /tmp/x"}}})
	}))
	defer api.Close()
	useTestServer(t, api.URL)
	conf := filepath.Join(t.TempDir(), "nix.conf")
	t.Setenv("NIX_USER_CONF_FILES", conf)
	_ = os.WriteFile(conf, []byte("substituters = https://mine.example\ntrusted-public-keys = mine:KEY\n"), 0o644)
	var outs []string
	for range 2 {
		outs = append(outs, stdoutOf(t, func() error {
			cmd := rootCmd()
			cmd.SetArgs([]string{"use", "hello"})
			return cmd.Execute()
		}))
	}
	b, _ := os.ReadFile(conf)
	want := "substituters = " + near.URL + "/hello?priority=45 " + farURL + "/hello?priority=46 https://mine.example\n" +
		"trusted-public-keys = hello:KEY mine:KEY\n"
	if !strings.HasPrefix(string(b), want) {
		t.Fatalf("nix.conf after two runs:\n%s\nwant it to start with:\n%s", b, want)
	}
	if bytes.Contains(b, []byte("127.0.0.2")) || bytes.Contains(b, []byte("evil")) {
		t.Fatalf("a node that did not answer, or a URL nix.conf cannot take, was written:\n%s", b)
	}
	netrc, _ := os.ReadFile(filepath.Join(filepath.Dir(conf), "netrc"))
	for host, n := range map[string]int{"127.0.0.1": 1, "localhost": 1, "127.0.0.2": 0, "evil.example": 0} {
		if got := strings.Count(string(netrc), "machine "+host+"\n"); got != n {
			t.Fatalf("netrc has %d entries for %s, want %d:\n%s", got, host, n, netrc)
		}
	}
	if strings.Count(string(netrc), "password T\n") != 2 {
		t.Fatalf("netrc:\n%s", netrc)
	}
	// What it printed: each node written with its round trip, nearest first.
	out := outs[1]
	iNear, iFar := strings.Index(out, "?priority=45  (us-1, us, "), strings.Index(out, "?priority=46  (eu-1, eu, ")
	if iNear < 0 || iFar < iNear || !strings.Contains(out, " ms)\n") {
		t.Fatalf("garret use printed:\n%s", out)
	}
}

// TestUse_LoneNode: without a node list (a lone node, or Attic) garret use
// writes the one substituter without ?priority=, as attic use does, and
// refuses an endpoint nix.conf cannot take.
func TestUse_LoneNode(t *testing.T) {
	sub := ""
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := "hello:KEY"
		_ = json.NewEncoder(w).Encode(v1.CacheConfig{SubstituterEndpoint: &sub, PublicKey: &key,
			Nodes: []v1.CacheNode{{Name: "only", SubstituterEndpoint: sub}}})
	}))
	defer api.Close()
	sub = api.URL + "/hello"
	useTestServer(t, api.URL)
	conf := filepath.Join(t.TempDir(), "nix.conf")
	t.Setenv("NIX_USER_CONF_FILES", conf)
	out := stdoutOf(t, func() error {
		cmd := rootCmd()
		cmd.SetArgs([]string{"use", "hello"})
		return cmd.Execute()
	})
	b, _ := os.ReadFile(conf)
	if !strings.HasPrefix(string(b), "substituters = "+sub+" https://cache.nixos.org\n") || !strings.Contains(out, "+ Substituter: "+sub+"\n") {
		t.Fatalf("nix.conf:\n%s\nprinted:\n%s", b, out)
	}
	sub = api.URL + "/hello#x"
	cmd := rootCmd()
	cmd.SetArgs([]string{"use", "hello"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "query or fragment") {
		t.Fatalf("endpoint with '#': %v", err)
	}
}
