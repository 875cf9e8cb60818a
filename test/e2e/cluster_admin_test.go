package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
)

// newClusterServer is a garretd with gossip on a free port, joining join
// (empty: it bootstraps), sharing the token secret of every such server.
func newClusterServer(t *testing.T, name, region string, join string) (*server, string) {
	t.Helper()
	dir := t.TempDir()
	port, gossip := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	joinTOML := ""
	if join != "" {
		joinTOML = fmt.Sprintf("join = [%q]\n", join)
	}
	cfg := fmt.Sprintf(`listen = "127.0.0.1:%d"
data-dir = %q

[jwt.signing]
token-hs256-secret-base64 = %q

[cluster]
node-name = %q
region = %q
secret = "e2e-cluster-secret-0123456789abcdef-0123"
gossip-listen = %q
p2p-listen = "/ip4/127.0.0.1/tcp/0"
%s`, port, filepath.Join(dir, "data"), base64.StdEncoding.EncodeToString([]byte("e2e-cluster-token-secret-0123456789abcdef")), name, region, gossip, joinTOML)
	s := &server{t: t, dir: dir, config: filepath.Join(dir, "server.toml"), url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s, gossip
}

// TestClusterAdmin_LeaveExitsZero: `garret cluster status` shows both nodes'
// Raft progress; `garret cluster leave` on the second makes its garretd
// leave Raft and exit with status 0.
func TestClusterAdmin_LeaveExitsZero(t *testing.T) {
	first, seed := newClusterServer(t, "eu-1", "eu", "")
	second, _ := newClusterServer(t, "us-1", "us", seed)
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir()}
	admin := first.makeToken("--sub", "admin", "--validity", "1 hour", "--cluster-admin")
	run(t, env, garret, "login", "eu", first.url, admin)
	run(t, env, garret, "login", "us", second.url, admin)
	status := func(srv string) v1.ClusterStatus {
		var st v1.ClusterStatus
		if err := json.Unmarshal([]byte(run(t, env, garret, "cluster", "status", "--json", "--server", srv)), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := status("us")
		voters := 0
		for _, n := range st.Nodes {
			if n.Role == "voter" && !n.Unreachable && n.AppliedIndex > 0 && n.Term == st.Term {
				voters++
			}
		}
		if voters == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two voters with their Raft progress: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := run(t, env, garret, "cluster", "status", "--server", "us"); !strings.Contains(out, "APPLIED") || !strings.Contains(out, "leader") {
		t.Fatalf("status table: %s", out)
	}

	if out := run(t, env, garret, "cluster", "leave", "--server", "us"); !strings.Contains(out, "us-1 is leaving") {
		t.Fatalf("leave: %q", out)
	}
	done := make(chan error, 1)
	go func() { done <- second.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("garretd exited with %v after leave; log:\n%s", err, second.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("garretd did not exit after leave; log:\n%s", second.log)
	}
	second.cmd = nil
	if st := status("eu"); len(st.Nodes) != 1 || st.Nodes[0].Name != "eu-1" || st.Nodes[0].Role != "voter" {
		t.Fatalf("status after the leave: %+v", st)
	}
}
