package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/dialurl"
)

// maxNodes bounds how many nodes garret use measures (the server lists at
// most as many).
const maxNodes = 64

// substituter is one URL `garret use` writes, with what it measured.
type substituter struct {
	url      string
	priority int32 // 0: none written (a lone node answers its own)
	note     string
}

func (s substituter) setting() string {
	if s.priority == 0 {
		return s.url
	}
	return fmt.Sprintf("%s?priority=%d", s.url, s.priority)
}

// substituters are the cache's substituter URLs, nearest first: a lone
// node's endpoint as it is; in a cluster every node that answers, ordered by
// the round trip measured to it, with ?priority= the cache's priority, +1,
// +2, … (the order Nix then tries them in). Nodes that do not answer are
// left out and said so: Nix would try each of them on every build, waiting
// on a dead one up to its connect timeout, while running garret use again
// once the node is back adds it.
func substituters(c *apiClient, cc v1.CacheConfig) ([]substituter, error) {
	if err := checkSubstituterURL(*cc.SubstituterEndpoint); err != nil {
		return nil, fmt.Errorf("the server's substituter endpoint: %w", err)
	}
	nodes := usableNodes(cc.Nodes)
	if len(nodes) < 2 {
		return []substituter{{url: *cc.SubstituterEndpoint}}, nil
	}
	base := int64(41)
	if cc.Priority != nil {
		base = int64(*cc.Priority)
	}
	type measured struct {
		node v1.CacheNode
		rtt  time.Duration
		err  error
	}
	results := make([]measured, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := c.roundTrip(strings.TrimSuffix(n.SubstituterEndpoint, "/") + "/nix-cache-info")
			results[i] = measured{n, rtt, err}
		}()
	}
	wg.Wait()
	var ok []measured
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "%s (%s) did not answer, left out (run garret use again once it does): %v\n", r.node.Name, r.node.SubstituterEndpoint, r.err)
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("no node of the cluster answered (tried %d)", len(nodes))
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].rtt < ok[j].rtt })
	out := make([]substituter, len(ok))
	for i, r := range ok {
		out[i] = substituter{url: r.node.SubstituterEndpoint, priority: int32(min(base+int64(i), math.MaxInt32)),
			note: fmt.Sprintf("  (%s, %s, %.1f ms)", r.node.Name, r.node.Region, float64(r.rtt.Microseconds())/1000)}
	}
	return out, nil
}

// usableNodes are the listed nodes whose URL can go into nix.conf, each
// once, at most maxNodes; the others are named on stderr.
func usableNodes(nodes []v1.CacheNode) []v1.CacheNode {
	seen := map[string]bool{}
	var out []v1.CacheNode
	for _, n := range nodes {
		if err := checkSubstituterURL(n.SubstituterEndpoint); err != nil {
			fmt.Fprintf(os.Stderr, "%s left out: %v\n", n.Name, err)
			continue
		}
		if seen[n.SubstituterEndpoint] || len(out) == maxNodes {
			continue
		}
		seen[n.SubstituterEndpoint] = true
		out = append(out, n)
	}
	return out
}

// checkSubstituterURL refuses what the server says the substituter is if
// no client could dial it or it would not stay one item of nix.conf's
// substituters (a space; '#', which starts a comment, is a fragment).
func checkSubstituterURL(u string) error {
	if err := dialurl.Check(u); err != nil {
		return fmt.Errorf("%q: %w", u, err)
	}
	if strings.IndexFunc(u, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%q has a space, which nix.conf cannot take", u)
	}
	return nil
}

// roundTrip is the shortest of three GETs of u (after one that opens the
// connection), each within 3 s.
func (c *apiClient) roundTrip(u string) (time.Duration, error) {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 3 * time.Second, Transport: tr}
	best := time.Duration(-1)
	for i := range 4 {
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			return 0, err
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: %s", u, resp.Status)
		}
		if d := time.Since(start); i > 0 && (best < 0 || d < best) {
			best = d
		}
	}
	return best, nil
}
