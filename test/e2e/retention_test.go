package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestNix_Retention: a cache with a 10 s retention period, with each Nix
// on its default settings. Two closures are pushed with `nix copy`; one is
// substituted (its NARs downloaded) a little later, the other is left
// alone. After the period, a garbage collection pass removes only the
// closure nobody downloaded: it no longer substitutes, while the downloaded
// one still does.
func TestNix_Retention(t *testing.T) {
	s := newServer(t)
	tok := s.makeToken("--sub", "e2e", "--validity", "1 hour", "--pull", "*", "--push", "*", "--create-cache", "*",
		"--configure-cache", "*", "--configure-cache-retention", "*", "--cluster-admin")
	const period = 10 * time.Second
	forEachNix(t, func(t *testing.T, nc nixClient) {
		env := nixEnv(t, s.url, tok)
		cache := "ret-" + strings.NewReplacer(".", "", "nix-", "n").Replace(nc.name)
		key := createCache(t, s, tok, cache)
		api(t, "PATCH", s.url+"_api/v1/cache-config/"+cache, tok, map[string]any{"retention_period": map[string]int{"Period": int(period / time.Second)}})
		used, usedDep := buildClosure(t, nc, env)
		idle, _ := buildClosure(t, nc, env)
		nc.run(t, env, "nix", "copy", "--to", s.url+"upload/"+cache+"?compression=zstd", used, idle)
		pushed := time.Now()

		time.Sleep(time.Second) // past the resolution of a 10 s period (a 24th of it)
		substitute(t, nc.local(t), env, s.url+cache, key, used, usedDep)
		time.Sleep(time.Until(pushed.Add(period + time.Second)))

		var res struct {
			ObjectsExpired int `json:"objects_expired"`
		}
		if err := json.Unmarshal(api(t, "POST", s.url+"_api/v1/cluster/gc", tok, nil), &res); err != nil {
			t.Fatal(err)
		}
		t.Logf("the pass expired %d objects (both Nix clients' caches)", res.ObjectsExpired)
		store := t.TempDir()
		out := nc.fails(t, env, "nix-store", "--store", store, "-r", idle, "--option", "substituters", s.url+cache,
			"--option", "trusted-public-keys", key)
		t.Logf("substituting the idle closure after the pass:\n%s", out)
		substitute(t, nc.local(t), env, s.url+cache, key, used, usedDep)
	})
}
