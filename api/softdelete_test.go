package api

import (
	"bytes"
	"strings"
	"testing"
)

// TestDestroyCache_SoftDelete: with soft-delete-caches a destroyed cache's
// name is refused as Attic refuses it (400 CacheAlreadyExists) while the
// cache reads as missing; without it the name can be created again.
func TestDestroyCache_SoftDelete(t *testing.T) {
	const body = `{"keypair":"Generate","is_public":true,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`
	for _, soft := range []bool{true, false} {
		ac := DefaultConfig()
		ac.SoftDeleteCaches = soft
		e := newTestEnvWith(t, ac)
		e.createCache("gone", true)
		if st, b := e.do("DELETE", "/_api/v1/cache-config/gone", e.root, nil, nil); st != 200 {
			t.Fatalf("soft=%v: destroy: %d %s", soft, st, b)
		}
		for _, path := range []string{"/_api/v1/cache-config/gone", "/gone/nix-cache-info"} {
			if st, b := e.do("GET", path, e.root, nil, nil); st != 404 || !bytes.Contains(b, []byte("NoSuchCache")) {
				t.Fatalf("soft=%v: GET %s after destroy: %d %s", soft, path, st, b)
			}
		}
		if st, b := e.do("DELETE", "/_api/v1/cache-config/gone", e.root, nil, nil); st != 404 {
			t.Fatalf("soft=%v: destroy again: %d %s", soft, st, b)
		}
		st, b := e.do("POST", "/_api/v1/cache-config/gone", e.root, strings.NewReader(body), nil)
		switch {
		case soft && (st != 400 || !bytes.Contains(b, []byte(`"error":"CacheAlreadyExists"`))):
			t.Fatalf("create a soft-deleted name: %d %s", st, b)
		case !soft && st != 200:
			t.Fatalf("create a hard-deleted name: %d %s", st, b)
		}
	}
}
