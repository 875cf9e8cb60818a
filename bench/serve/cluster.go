package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/test/e2e/wan"
)

// The emulated WAN of the distance and lag phases: the e2e cluster tests'
// 150 ms round trip between the regions.
const (
	wanRTT   = 150 * time.Millisecond
	nodePort = 8080 // every node's HTTP port, on its own host
)

// wanCluster is two production garretd on hosts of the WAN emulator the e2e
// tests use (test/e2e/wan): eu-1 bootstraps, us-1 joins it.
type wanCluster struct {
	net            *wan.Net
	euHost, usHost *wan.Host
	eu, us         *garret
	close          func()
}

// startCluster starts the cluster and waits until both nodes are Raft
// members and ready. Both acknowledge a push as soon as they hold it
// (min-copies-before-ack = 1), so the other region copies it in the
// background: the replication these phases measure, not Nix's upload.
func startCluster(s *suite, name string) (*wanCluster, error) {
	n, err := wan.New() // its error says why the emulator cannot run here
	if err != nil {
		return nil, err
	}
	n.SetLatency("eu", "us", wanRTT/2)
	c := &wanCluster{net: n}
	var once sync.Once
	c.close = func() {
		once.Do(func() {
			for _, g := range []*garret{c.us, c.eu} {
				if g != nil {
					_ = g.cmd.Process.Kill() // its data goes too; no need to leave the cluster
					g.stop()
				}
			}
			_ = n.Close()
		})
	}
	s.onStop(c.close)
	jwt := make([]byte, 64)
	_, _ = rand.Read(jwt)
	secret, err := s.clusterSecret()
	if err != nil {
		return nil, err
	}
	join := ""
	for _, region := range []string{"eu", "us"} {
		h, err := n.AddHost(region+"-1", region)
		if err != nil {
			return nil, err
		}
		ip := h.IP.String()
		extra := fmt.Sprintf(`[cluster]
node-name = %q
region = %q
secret = %q
gossip-listen = "%s:7946"
p2p-listen = "/ip4/%s/tcp/4001"
api-url = "http://%s:%d"
join = [%s]
min-copies-before-ack = 1
`, h.Name, region, secret, ip, ip, ip, nodePort, join)
		g, err := startNode(s, name+"-"+h.Name, nodeSpec{host: h, port: nodePort, jwt: jwt, extra: extra, tokenArgs: []string{"--cluster-admin"}})
		if err != nil {
			return nil, err
		}
		if region == "eu" {
			c.euHost, c.eu, join = h, g, fmt.Sprintf(`"%s:7946"`, ip)
		} else {
			c.usHost, c.us = h, g
		}
	}
	return c, waitFor(90*time.Second, "both nodes in Raft and ready", func() bool {
		for _, g := range []*garret{c.eu, c.us} {
			if code, _ := g.status("readyz"); code != 200 {
				return false
			}
		}
		var st v1.ClusterStatus
		if c.eu.getJSON("_api/v1/cluster", &st) != nil {
			return false
		}
		members := 0
		for _, m := range st.Nodes {
			if m.Role == "voter" || m.Role == "nonvoter" {
				members++
			}
		}
		return members == 2
	})
}

// createCache creates a public cache at eu-1, waits until us-1 has it too,
// and returns its public key.
func (c *wanCluster) createCache(name string) (string, error) {
	if err := c.eu.createPublicCache(name); err != nil {
		return "", err
	}
	if err := waitFor(30*time.Second, "cache "+name+" on us-1", func() bool {
		code, _ := c.us.status(name + "/nix-cache-info")
		return code == 200
	}); err != nil {
		return "", err
	}
	return c.eu.publicKey(name)
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, what string, cond func() bool) error {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s", d, what)
		}
	}
}

// get sends an authorized GET from the node's host.
func (g *garret) get(path string) (*http.Response, error) {
	req, err := http.NewRequest("GET", g.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	return g.http.Do(req)
}

// status is the status code of a GET of path (0 if it failed), the body read.
func (g *garret) status(path string) (int, int64) {
	resp, err := g.get(path)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n
}

func (g *garret) getJSON(path string, v any) error {
	resp, err := g.get(path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// publicKey is the cache's signing key, as trusted-public-keys wants it.
func (g *garret) publicKey(cache string) (string, error) {
	var cfg v1.CacheConfig
	if err := g.getJSON("_api/v1/cache-config/"+cache, &cfg); err != nil {
		return "", err
	}
	if cfg.PublicKey == nil {
		return "", fmt.Errorf("cache %s has no public key", cache)
	}
	return *cfg.PublicKey, nil
}

// scrape reads the node's /metrics and calls fn with each sample: the
// series as written (name and labels) and its value.
func (g *garret) scrape(fn func(series string, v float64)) error {
	resp, err := g.get("metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if series, v, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(series, "#") {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			fn(series, f)
		}
	}
	return sc.Err()
}

// metrics reads the named unlabelled series of the node's /metrics (absent
// ones are missing from the map).
func (g *garret) metrics(names ...string) (map[string]float64, error) {
	out := map[string]float64{}
	err := g.scrape(func(series string, v float64) {
		if slices.Contains(names, series) {
			out[series] = v
		}
	})
	return out, err
}

// caught reports whether the node holds everything it should: every
// narinfo of paths (those found are removed from the map) and nothing left
// for its syncer to copy.
func (g *garret) caught(cache string, missing map[string]bool) bool {
	for p := range missing {
		if code, _ := g.status(cache + "/" + hashPart(p) + ".narinfo"); code != 200 {
			return false
		}
		delete(missing, p)
	}
	m, err := g.metrics("garret_syncer_pending", "garret_syncer_scanning", "garret_syncer_lag_seconds")
	return err == nil && len(m) == 3 && m["garret_syncer_pending"] == 0 && m["garret_syncer_scanning"] == 0 && m["garret_syncer_lag_seconds"] == 0
}

// hashPart is the 32-character hash of a store path.
func hashPart(storePath string) string {
	return strings.TrimPrefix(storePath, "/nix/store/")[:32]
}

// pushFrom runs `nix copy --to` the node's upload URL on host h (the node's
// own) with a fresh narinfo disk cache, and returns how long it took.
func (s *suite) pushFrom(h *wan.Host, g *garret, cache string, paths []string) (time.Duration, error) {
	netrc, err := s.netrc(g)
	if err != nil {
		return 0, err
	}
	xdg, err := os.MkdirTemp(s.env.dir, "xdg-push-")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	_, err = s.env.nixOn(h, []string{"XDG_CACHE_HOME=" + xdg}, "nix", append([]string{"copy", "--option", "netrc-file", netrc,
		"--to", g.url + "upload/" + cache + "?compression=zstd"}, paths...)...)
	return time.Since(start), err
}

// substitute times `nix-store -r` of paths on host h into an empty store,
// from the one substituter url, with a fresh narinfo disk cache and Nix's
// defaults otherwise.
func (s *suite) substitute(h *wan.Host, url, key string, paths []string) (time.Duration, error) {
	dir, err := os.MkdirTemp(s.env.dir, "substitute-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	conf := "experimental-features = nix-command\nsandbox = false\nbuild-users-group =\n" +
		"substituters = " + url + "\ntrusted-public-keys = " + key
	start := time.Now()
	_, err = s.env.nixOn(h, []string{"NIX_CONFIG=" + conf, "XDG_CACHE_HOME=" + filepath.Join(dir, "xdg")},
		"nix-store", append([]string{"--store", filepath.Join(dir, "store"), "-r"}, paths...)...)
	return time.Since(start), err
}

// clusterSecret is a fresh [cluster] secret from garretd gen-secret, as an
// operator makes one; every cluster the suite starts uses it.
func (s *suite) clusterSecret() (string, error) {
	out, err := exec.Command(s.opts.garretd, "gen-secret").Output()
	if err != nil {
		return "", fmt.Errorf("garretd gen-secret: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
