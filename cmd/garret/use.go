package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/garret-cache/garret/api/v1"
)

const nixosKey = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="

func useCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "use CACHE",
		Short: "Add the cache as a substituter (and its key, and a netrc entry) to your nix.conf",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, _, cache, err := connect(args[0])
			if err != nil {
				return err
			}
			cc, err := c.cacheConfig(cache)
			if err != nil {
				return err
			}
			if cc.SubstituterEndpoint == nil || cc.PublicKey == nil {
				return fmt.Errorf("the server did not return the cache's substituter endpoint and public key")
			}
			conf := userNixConf()
			lines, err := readLines(conf)
			if err != nil {
				return err
			}
			subs, err := substituters(c, *cc)
			if err != nil {
				return err
			}
			// Earlier entries of this cache (any node, any priority) give way
			// to the new ones, nearest first.
			var urls []string
			for _, e := range subs {
				urls = append(urls, e.url)
			}
			for _, n := range cc.Nodes {
				urls = append(urls, n.SubstituterEndpoint)
			}
			lines = dropSubstituters(lines, append(urls, *cc.SubstituterEndpoint))
			for i := len(subs) - 1; i >= 0; i-- {
				lines = prependSetting(lines, "substituters", subs[i].setting(), "https://cache.nixos.org")
			}
			lines = prependSetting(lines, "trusted-public-keys", *cc.PublicKey, nixosKey)
			endpoints := urls
			if cc.UploadEndpoint != nil { // Garret's: the URL for nix copy --to
				endpoints = append(endpoints, *cc.UploadEndpoint)
			}
			if c.token != "" {
				netrc := filepath.Join(filepath.Dir(conf), "netrc")
				for _, e := range endpoints {
					u, err := url.Parse(e)
					if err != nil {
						return err
					}
					if err := writeNetrc(netrc, u.Hostname(), c.token); err != nil {
						return err
					}
				}
				lines = setSetting(lines, "netrc-file", netrc)
			}
			if err := writeLines(conf, lines, 0o644); err != nil {
				return err
			}
			fmt.Printf("Configuring Nix to use %q on %s:\n", cache, conf)
			for _, e := range subs {
				fmt.Printf("+ Substituter: %s%s\n", e.setting(), e.note)
			}
			fmt.Printf("+ Trusted Public Key: %s\n", *cc.PublicKey)
			if cc.UploadEndpoint != nil {
				fmt.Printf("Push with `garret push %s PATH`, or with Nix itself:\n  nix copy --to '%s?compression=zstd' PATH\n", cache, *cc.UploadEndpoint)
			}
			return nil
		},
	}
}

// userNixConf is the first of NIX_USER_CONF_FILES, else $XDG_CONFIG_HOME/nix/nix.conf.
func userNixConf() string {
	if v := os.Getenv("NIX_USER_CONF_FILES"); v != "" {
		return strings.Split(v, ":")[0]
	}
	return filepath.Join(configHome(), "nix", "nix.conf")
}

func readLines(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}

func writeLines(p string, lines []string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), mode)
}

func settingName(line string) string {
	k, _, ok := strings.Cut(line, "=")
	if !ok {
		return ""
	}
	return strings.TrimSpace(k)
}

// prependSetting puts value first in a list setting, keeping what is there;
// a missing setting gets value and fallback (Attic's behaviour).
func prependSetting(lines []string, key, value, fallback string) []string {
	for i, l := range lines {
		if settingName(l) != key {
			continue
		}
		_, v, _ := strings.Cut(l, "=")
		items := strings.Fields(v)
		for _, it := range items {
			if it == value {
				return lines
			}
		}
		lines[i] = key + " = " + strings.Join(append([]string{value}, items...), " ")
		return lines
	}
	return append(lines, key+" = "+value+" "+fallback)
}

// setSetting replaces or adds a scalar setting.
func setSetting(lines []string, key, value string) []string {
	for i, l := range lines {
		if settingName(l) == key {
			lines[i] = key + " = " + value
			return lines
		}
	}
	return append(lines, key+" = "+value)
}

// writeNetrc sets the password of host's entry, keeping other entries.
func writeNetrc(p, host, token string) error {
	lines, err := readLines(p)
	if err != nil {
		return err
	}
	var out []string
	skip := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "machine" {
			skip = f[1] == host
		}
		if !skip && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	out = append(out, "machine "+host, "password "+token)
	return writeLines(p, out, 0o600)
}

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
// left out (Nix would wait on each of them), and said so.
func substituters(c *apiClient, cc v1.CacheConfig) ([]substituter, error) {
	if len(cc.Nodes) < 2 {
		return []substituter{{url: *cc.SubstituterEndpoint}}, nil
	}
	base := int32(41)
	if cc.Priority != nil {
		base = *cc.Priority
	}
	type measured struct {
		node v1.CacheNode
		rtt  time.Duration
		err  error
	}
	results := make([]measured, len(cc.Nodes))
	var wg sync.WaitGroup
	for i, n := range cc.Nodes {
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
			fmt.Fprintf(os.Stderr, "%s (%s) did not answer, left out: %v\n", r.node.Name, r.node.SubstituterEndpoint, r.err)
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("no node of the cluster answered")
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].rtt < ok[j].rtt })
	out := make([]substituter, len(ok))
	for i, r := range ok {
		out[i] = substituter{url: r.node.SubstituterEndpoint, priority: base + int32(i),
			note: fmt.Sprintf("  (%s, %s, %.1f ms)", r.node.Name, r.node.Region, float64(r.rtt.Microseconds())/1000)}
	}
	return out, nil
}

// roundTrip is the shortest of three GETs of u (after one that opens the
// connection), each within 3 s.
func (c *apiClient) roundTrip(u string) (time.Duration, error) {
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
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

// dropSubstituters removes from the substituters setting every entry whose
// URL (without its query) is one of urls.
func dropSubstituters(lines []string, urls []string) []string {
	drop := map[string]bool{}
	for _, u := range urls {
		drop[strings.TrimSuffix(u, "/")] = true
	}
	for i, l := range lines {
		if settingName(l) != "substituters" {
			continue
		}
		_, v, _ := strings.Cut(l, "=")
		var keep []string
		for _, it := range strings.Fields(v) {
			base, _, _ := strings.Cut(it, "?")
			if !drop[strings.TrimSuffix(base, "/")] {
				keep = append(keep, it)
			}
		}
		lines[i] = "substituters = " + strings.Join(keep, " ")
	}
	return lines
}
