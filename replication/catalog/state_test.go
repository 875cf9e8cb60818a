package catalog

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/garret-cache/garret/internal/nixid"
)

// TestState_AbsentKeysSkipTables: the state's tables carry bloom filters,
// so reading keys that are not there (a push's new object, a token id never
// revoked) is answered by the filters, not by reading each table's blocks.
func TestState_AbsentKeysSkipTables(t *testing.T) {
	st, err := openState(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	const n = 2000
	b := st.db.NewBatch()
	// Even keys are present, odd ones absent, so that every absent key
	// falls within the table's bounds.
	for i := range n {
		if err := b.Set(objectKey("c", storeHash(2*i)), []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := st.db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := st.db.Metrics().Filter
	for i := range n {
		if ok, err := st.get(objectKey("c", storeHash(2*i+1)), nil); err != nil || ok {
			t.Fatalf("absent key %d: found %v, %v", 2*i+1, ok, err)
		}
	}
	after := st.db.Metrics().Filter
	for i := range n {
		if ok, err := st.get(objectKey("c", storeHash(2*i)), nil); err != nil || !ok {
			t.Fatalf("key %d: found %v, %v", 2*i, ok, err)
		}
	}
	// A hit is a table read the filter avoided; ~1% false positives.
	if hits := after.Hits - before.Hits; hits < n*95/100 {
		t.Fatalf("the filters answered %d of %d reads of absent keys (misses %d)", hits, n, after.Misses-before.Misses)
	}
}

// storeHash is a distinct valid store path hash for i.
func storeHash(i int) nixid.StorePathHash {
	return nixid.StorePathHash(fmt.Sprintf("%032d", i))
}
