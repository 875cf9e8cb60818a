package node

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/gc"
)

func testConfig(t *testing.T, dataDir, listen string) *serverconfig.Config {
	t.Helper()
	return loadTestConfig(t, dataDir, listen, "")
}

// loadTestConfig writes and loads a node config: dataDir, listen, a token
// secret, and extra TOML.
func loadTestConfig(t *testing.T, dataDir, listen, extra string) *serverconfig.Config {
	t.Helper()
	text := "listen = \"" + listen + "\"\ndata-dir = \"" + dataDir + "\"\n" + extra + "\n[jwt.signing]\ntoken-hs256-secret-base64 = \"" +
		base64.StdEncoding.EncodeToString([]byte("node-test-secret-node-test-secret")) + "\"\n"
	p := filepath.Join(t.TempDir(), "server.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := serverconfig.Load(p, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *serverconfig.Config) (*Node, error) {
	return New(Config{Server: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FastTimings: true})
}

func TestNode_StartRestartShutdown(t *testing.T) {
	dataDir := t.TempDir()
	n, err := start(t, testConfig(t, dataDir, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(n.URL())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /: %v %v", resp, err)
	}
	resp.Body.Close()
	// /metrics serves the node's registry: the components' series with the API's.
	resp, err = http.Get(n.URL() + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{"garret_chunkstore_segment_bytes", "garret_http_requests_total", "go_goroutines", "process_resident_memory_bytes", "libp2p_rcmgr_", "garret_catalog_applied_index"} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	key1, err := os.ReadFile(filepath.Join(dataDir, "p2p.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Same data dir: same identity, state kept, the node leads again.
	n2, err := start(t, testConfig(t, dataDir, "127.0.0.1:0"))
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer n2.Shutdown(context.Background())
	if !n2.Catalog().IsLeader() {
		t.Fatal("restarted node does not lead")
	}
	if key2, _ := os.ReadFile(filepath.Join(dataDir, "p2p.key")); string(key2) != string(key1) {
		t.Fatal("the node's identity changed across a restart")
	}
	if _, err := sweepNode(n2, context.Background(), time.Hour); err != nil {
		t.Fatalf("sweep: %v", err)
	}
}

func TestNode_FailedStartReleasesEverything(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dataDir := t.TempDir()
	if _, err := start(t, testConfig(t, dataDir, l.Addr().String())); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("start on a taken port: %v", err)
	}
	// The failed start closed its stores: the same data dir opens again.
	n, err := start(t, testConfig(t, dataDir, "127.0.0.1:0"))
	if err != nil {
		t.Fatalf("start after failure: %v", err)
	}
	_ = n.Shutdown(context.Background())
}

// sweepNode runs one pass of the node's sweep, as its GC loop does.
func sweepNode(n *Node, ctx context.Context, grace time.Duration) (chunkstore.SweepStats, error) {
	sw := &gc.Sweeper{Store: n.store, Manifests: n.catalog.ForEachManifest, Current: n.catalog.ConfirmCurrent, Grace: grace}
	return sw.Sweep(ctx)
}
