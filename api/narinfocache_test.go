package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/nixid"
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

// pushed uploads a store path to the public cache "pub" and returns it,
// its narinfo's path and a GET of that narinfo that must answer 200.
func pushed(t *testing.T, e *testEnv, name string, nar []byte) (v1.UploadPathNarInfo, string, func() string) {
	t.Helper()
	info := uploadInfo("pub", name, nar)
	if st, b := e.upload(e.root, info, nar); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	path := "/pub/" + info.StorePathHash + ".narinfo"
	return info, path, func() string {
		t.Helper()
		st, b := e.do("GET", path, "", nil, nil)
		if st != 200 {
			t.Fatalf("narinfo: %d %s", st, b)
		}
		return string(b)
	}
}

// TestNarInfoCache_NeverStale: a served narinfo follows a new signing key
// and a re-pushed object at once (the cache is keyed by their content).
func TestNarInfoCache_NeverStale(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("pub", true)
	nar := fileNAR("cached")
	info, path, get := pushed(t, e, "cached", nar)
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
	// Deleted while its narinfo is cached: 404 from the next request.
	del := `{"cache":"pub","store_path_hashes":["` + info.StorePathHash + `"]}`
	if st, b := e.do("POST", "/_api/v1/delete-paths", e.root, strings.NewReader(del), nil); st != 200 {
		t.Fatalf("delete: %d %s", st, b)
	}
	if st, _ := e.do("GET", path, "", nil, nil); st != 404 {
		t.Fatalf("narinfo after delete: %d", st)
	}
}

// countingCatalog counts object reads.
type countingCatalog struct {
	Catalog
	reads atomic.Int64
}

func (c *countingCatalog) ObjectRaw(cache nixid.CacheName, h nixid.StorePathHash) ([]byte, error) {
	c.reads.Add(1)
	return c.Catalog.ObjectRaw(cache, h)
}

// TestNarInfoCache_NoReadWhileNothingChanged: a cached narinfo is served
// without reading the catalog until an object or a cache changes; a change
// elsewhere costs one read, and an unchanged object keeps its rendering.
func TestNarInfoCache_NoReadWhileNothingChanged(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("pub", true)
	cc := &countingCatalog{Catalog: e.api.catalog}
	e.api.catalog = cc
	_, _, get := pushed(t, e, "hot", fileNAR("hot"))
	first := get()
	before := cc.reads.Load()
	for range 10 {
		if get() != first {
			t.Fatal("the narinfo changed")
		}
	}
	if n := cc.reads.Load() - before; n != 0 {
		t.Fatalf("%d catalog reads for 10 cached narinfos, nothing changed", n)
	}
	other := uploadInfo("pub", "other", fileNAR("other"))
	if st, b := e.upload(e.root, other, fileNAR("other")); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	before = cc.reads.Load()
	if get() != first || get() != first {
		t.Fatal("another path's push changed this narinfo")
	}
	if n := cc.reads.Load() - before; n != 1 {
		t.Fatalf("%d catalog reads after another path changed, want 1", n)
	}
}

// TestNarInfoCache_ByteBudget: the cache never holds more than its byte
// budget, drops the least recently used first, and does not keep a body
// larger than its bound.
func TestNarInfoCache_ByteBudget(t *testing.T) {
	var c narinfoCache
	body := strings.Repeat("x", 4096)
	id := func(i int) narinfoID { return narinfoID{"c", nixid.StorePathHash(fmt.Sprint(i))} }
	n := narinfoCacheBytes/len(body) + 100
	for i := range n {
		c.add(id(i), narinfoEntry{body: body})
		if i == 0 {
			continue
		}
		if _, ok := c.get(id(0)); !ok {
			t.Fatalf("the most recently used entry went after %d adds", i)
		}
	}
	each := len(body) + narinfoEntryOverhead // the heap an entry takes, not its body alone
	if c.bytes > narinfoCacheBytes || c.bytes != c.lru.Len()*each || c.size() != int64(c.bytes) {
		t.Fatalf("%d bytes in %d entries, budget %d", c.bytes, c.lru.Len(), narinfoCacheBytes)
	}
	if _, ok := c.get(id(1)); ok {
		t.Fatal("the least recently used entry stayed")
	}
	c.add(id(0), narinfoEntry{body: "short"}) // replaced: its bytes are counted once
	if c.bytes != (c.lru.Len()-1)*each+len("short")+narinfoEntryOverhead {
		t.Fatalf("%d bytes after replacing an entry", c.bytes)
	}
	c.add(id(-1), narinfoEntry{body: strings.Repeat("y", narinfoCacheMaxBody+1)})
	if _, ok := c.get(id(-1)); ok {
		t.Fatal("an oversized body was kept")
	}
	if narinfoKey("k1", []byte("o")) == narinfoKey("k", []byte("1o")) {
		t.Fatal("the key and the object run together in the digest")
	}
}
