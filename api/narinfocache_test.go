package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/garret-cache/garret/api/v1"
)

// sigLine is the first Sig: line of a narinfo.
func sigLine(t *testing.T, body string) string {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "Sig: ") {
			return l
		}
	}
	t.Fatalf("no signature in\n%s", body)
	return ""
}

// TestNarInfoCache_NeverStale: a served narinfo follows a new signing key
// and a re-pushed object at once (the cache is keyed by their content).
func TestNarInfoCache_NeverStale(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("pub", true)
	nar := fileNAR("cached")
	info := uploadInfo("pub", "cached", nar)
	if st, b := e.upload(e.root, info, nar); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	path := "/pub/" + info.StorePathHash + ".narinfo"
	get := func() string {
		st, b := e.do("GET", path, "", nil, nil)
		if st != 200 {
			t.Fatalf("narinfo: %d %s", st, b)
		}
		return string(b)
	}
	first := get()
	if again := get(); again != first {
		t.Fatalf("the same narinfo twice differs:\n%s\n%s", first, again)
	}
	if st, b := e.do("PATCH", "/_api/v1/cache-config/pub", e.root, strings.NewReader(`{"keypair":"Generate"}`), nil); st != 200 {
		t.Fatalf("new keypair: %d %s", st, b)
	}
	rekeyed := get()
	if sigLine(t, rekeyed) == sigLine(t, first) {
		t.Fatal("the narinfo kept the old key's signature after a new keypair")
	}
	st, b := e.do("GET", "/_api/v1/cache-config/pub", e.root, nil, nil)
	var cfg v1.CacheConfig
	if st != 200 || json.Unmarshal(b, &cfg) != nil || cfg.PublicKey == nil {
		t.Fatalf("cache config: %d %s", st, b)
	}
	keyName := strings.SplitN(*cfg.PublicKey, ":", 2)[0]
	if !strings.HasPrefix(sigLine(t, rekeyed), "Sig: "+keyName+":") {
		t.Fatalf("signature %q, key %q", sigLine(t, rekeyed), *cfg.PublicKey)
	}
	// A re-push with another deriver changes the object, so the narinfo.
	info.Deriver = new(string)
	*info.Deriver = "0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-b.drv"
	if st, b := e.upload(e.root, info, nar); st != 200 {
		t.Fatalf("re-upload: %d %s", st, b)
	}
	if body := get(); !strings.Contains(body, "Deriver: 0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-b.drv") {
		t.Fatalf("after a re-push:\n%s", body)
	}
}

// TestNarInfoCache_ByteBudget: the cache never holds more than its byte
// budget, drops the least recently used first, and does not keep a body
// larger than its bound.
func TestNarInfoCache_ByteBudget(t *testing.T) {
	var c narinfoCache
	body := strings.Repeat("x", 4096)
	n := narinfoCacheBytes/len(body) + 100
	for i := range n {
		c.add(narinfoKey("k", []byte(fmt.Sprint(i))), body)
		if i == 0 {
			continue
		}
		if _, ok := c.get(narinfoKey("k", []byte("0"))); !ok {
			t.Fatalf("the most recently used entry went after %d adds", i)
		}
	}
	if c.bytes > narinfoCacheBytes || c.bytes != c.lru.Len()*len(body) {
		t.Fatalf("%d bytes in %d entries, budget %d", c.bytes, c.lru.Len(), narinfoCacheBytes)
	}
	if _, ok := c.get(narinfoKey("k", []byte("1"))); ok {
		t.Fatal("the least recently used entry stayed")
	}
	c.add(narinfoKey("k", []byte("big")), strings.Repeat("y", narinfoCacheMaxBody+1))
	if _, ok := c.get(narinfoKey("k", []byte("big"))); ok {
		t.Fatal("an oversized body was kept")
	}
	if narinfoKey("k1", []byte("o")) == narinfoKey("k", []byte("1o")) {
		t.Fatal("the key and the object run together in the digest")
	}
}
