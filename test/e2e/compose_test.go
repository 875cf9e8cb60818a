package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/test/e2e/wan"
)

// TestCompose_ClusterForms runs deploy/compose.yaml's cluster as Docker
// Compose would, without Docker (these machines have no engine): each
// service on a host of its own (a network namespace, where the service
// name resolves as on compose's network: /etc/netns/<ns>/hosts), started in
// compose's order with its deploy/compose/<name>.toml unchanged but for
// data-dir (the container's /data volume), the secrets in the environment
// as compose/cluster.env gives them, and the compose health check
// (garretd healthcheck on /readyz, run on the node's host) gating the nodes
// that depend on eu-1. The cluster must form: three Raft members in two
// regions, all healthy, and a cache created on us-2 is served by eu-1.
func TestCompose_ClusterForms(t *testing.T) {
	requireWAN(t)
	n, err := wan.New()
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	c := &cluster{t: t, net: n, jwt: base64.StdEncoding.EncodeToString(key), secret: "compose-e2e-" + base64.RawURLEncoding.EncodeToString(key[:24])}
	// compose/cluster.env.
	t.Setenv("GARRET_SERVER_TOKEN_HS256_SECRET_BASE64", c.jwt)
	t.Setenv("GARRET_CLUSTER_SECRET", c.secret)
	t.Setenv("ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64", "")
	t.Setenv("ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64", "")
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("---- log of %s ----\n%s", nd.name, nd.log)
			}
		}
	})
	services := []struct{ name, region string }{{"eu-1", "eu"}, {"us-1", "us"}, {"us-2", "us"}}
	n.SetLatency("eu", "eu", 500*time.Microsecond)
	n.SetLatency("us", "us", 500*time.Microsecond)
	n.SetLatency("eu", "us", 40*time.Millisecond)
	hosts := "127.0.0.1 localhost\n"
	for _, s := range services {
		h, err := n.AddHost(s.name, s.region)
		if err != nil {
			t.Fatal(err)
		}
		hosts += fmt.Sprintf("%s %s\n", h.IP, s.name)
		dir := t.TempDir()
		text, err := os.ReadFile(filepath.Join("..", "..", "deploy", "compose", s.name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		const volume = "\ndata-dir = \"/data\"\n"
		if !strings.Contains(string(text), volume) {
			t.Fatalf("deploy/compose/%s.toml: no %q (the compose volume)", s.name, strings.TrimSpace(volume))
		}
		cfg := strings.Replace(string(text), volume, fmt.Sprintf("\ndata-dir = %q\n", filepath.Join(dir, "data")), 1)
		nd := &cnode{c: c, name: s.name, region: s.region, host: h, dir: dir, config: filepath.Join(dir, "server.toml"), http: h.HTTPClient(), log: &lockedBuffer{}}
		if err := os.WriteFile(nd.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	// What compose's network resolves, as `ip netns exec` shows it to the node.
	for _, nd := range c.nodes {
		etc := filepath.Join("/etc/netns", nd.host.NS)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(etc) })
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	healthy := func(nd *cnode) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// compose.yaml's health check, on the node's own host.
		return nd.host.Command(ctx, garretd, "healthcheck", "http://127.0.0.1:8080/readyz").Run() == nil
	}
	eu1 := c.nodes[0]
	eu1.start()
	eventually.Within(t, 60*time.Second, "eu-1 healthy (us-1 and us-2 depend on it)", func() bool { return healthy(eu1) })
	c.admin = eu1.makeToken("--sub", "compose-admin", "--validity", "1 day", "--pull", "*", "--push", "*",
		"--create-cache", "*", "--configure-cache", "*", "--cluster-admin")
	for _, nd := range c.nodes[1:] {
		nd.start()
	}
	c.waitMembers(3)
	for _, nd := range c.nodes {
		if !healthy(nd) {
			t.Errorf("%s: the compose health check fails in a formed cluster", nd.name)
		}
	}
	st, err := eu1.status()
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]int{}
	for _, m := range st.Nodes {
		regions[m.Region]++
	}
	if regions["eu"] != 1 || regions["us"] != 2 {
		t.Errorf("regions of the members: %v", regions)
	}
	c.node("us-2").createCache("compose")
}
