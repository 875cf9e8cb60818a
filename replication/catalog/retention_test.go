package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// TestCatalog_TouchAndExpire: downloads move AccessedAt forward only;
// expiry removes exactly the listed objects unused since the cut-off, checked
// again when it applies (an object touched after it was listed stays), and
// records the removals in the change log.
func TestCatalog_TouchAndExpire(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	c := n.cat
	if err := c.CreateCache(ctx, Cache{Name: "a", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 4; i++ {
		o := object("a", i)
		o.CreatedAt = t0
		if err := c.PutObject(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// 2 was downloaded at t0+2h; 3 at t0+30m; the later touch wins.
	if k, err := c.TouchObjects(ctx, "a", t0.Add(2*time.Hour), []nixid.StorePathHash{hashOf(2), hashOf(9)}); err != nil || k != 1 {
		t.Fatalf("touch: %d %v", k, err)
	}
	if k, err := c.TouchObjects(ctx, "a", t0.Add(time.Hour), []nixid.StorePathHash{hashOf(2), hashOf(3)}); err != nil || k != 1 {
		t.Fatalf("an earlier touch moved %d objects (%v), want only 3", k, err)
	}
	if o, _ := c.Object("a", hashOf(2)); !o.AccessedAt.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("AccessedAt of 2 = %v", o.AccessedAt)
	}
	if k, err := c.TouchObjects(ctx, "gone", t0, []nixid.StorePathHash{hashOf(1)}); err != nil || k != 0 {
		t.Fatalf("touch in a missing cache: %d %v", k, err)
	}
	head := c.ChangesHead()
	// The leader listed 1, 2 and 3 as unused before t0+90m; 2 was touched
	// after that (at apply it is not), 4 was not listed.
	k, err := c.ExpireObjects(ctx, "a", t0.Add(90*time.Minute), []nixid.StorePathHash{hashOf(1), hashOf(2), hashOf(3)})
	if err != nil || k != 2 {
		t.Fatalf("expire: %d %v, want 2", k, err)
	}
	for i, want := range map[int]bool{1: false, 2: true, 3: false, 4: true} {
		if _, err := c.Object("a", hashOf(i)); (err == nil) != want {
			t.Errorf("object %d present=%v, want %v", i, err == nil, want)
		}
	}
	chs, _, err := c.Changes(head, 10)
	if err != nil || len(chs) != 2 || chs[0].Op != OpDeleteObject || chs[1].Op != OpDeleteObject {
		t.Fatalf("changes after expiry: %+v %v", chs, err)
	}
	var seen []nixid.StorePathHash
	if err := c.ForEachObject("a", func(o Object) error { seen = append(seen, o.StorePathHash); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != hashOf(2) || seen[1] != hashOf(4) {
		t.Fatalf("objects left: %v", seen)
	}
	// A re-push resets the access time, as Attic's does.
	o := object("a", 2)
	o.CreatedAt = t0.Add(3 * time.Hour)
	if err := c.PutObject(ctx, o); err != nil {
		t.Fatal(err)
	}
	if o, _ := c.Object("a", hashOf(2)); !o.AccessedAt.IsZero() || !o.LastUsed().Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("after re-push: accessed %v, last used %v", o.AccessedAt, o.LastUsed())
	}
}

// TestCatalog_ForEachObjectWritesBetweenPages: a walk over more than a page
// visits every object once, in hash order, and fn may write to the catalog
// (here it expires every other object it sees) without waiting on the walk.
func TestCatalog_ForEachObjectWritesBetweenPages(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	c := n.cat
	if err := c.CreateCache(ctx, Cache{Name: "w"}); err != nil {
		t.Fatal(err)
	}
	const total = objectPage*2 + 7
	for i := 1; i <= total; i++ {
		if err := c.PutObject(ctx, object("w", i)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []nixid.StorePathHash
	err := c.ForEachObject("w", func(o Object) error {
		if len(seen) > 0 && o.StorePathHash <= seen[len(seen)-1] {
			return fmt.Errorf("%s after %s", o.StorePathHash, seen[len(seen)-1])
		}
		seen = append(seen, o.StorePathHash)
		if len(seen)%2 == 0 {
			_, err := c.ExpireObjects(ctx, "w", time.Now().Add(time.Hour), []nixid.StorePathHash{o.StorePathHash})
			return err
		}
		return nil
	})
	if err != nil || len(seen) != total {
		t.Fatalf("walk: %d of %d objects, %v", len(seen), total, err)
	}
	left := 0
	_ = c.ForEachObject("w", func(Object) error { left++; return nil })
	if left != total-total/2 {
		t.Fatalf("%d objects left, want %d", left, total-total/2)
	}
}

// TestCatalog_TouchAndExpireBounds: malformed and oversized commands are
// refused before the log.
func TestCatalog_TouchAndExpireBounds(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	c := n.cat
	many := make([]nixid.StorePathHash, MaxObjectsPerCommand+1)
	for i := range many {
		many[i] = hashOf(i)
	}
	now := time.Now()
	for name, err := range map[string]error{
		"touch, too many":   first(c.TouchObjects(ctx, "a", now, many)),
		"expire, too many":  first(c.ExpireObjects(ctx, "a", now, many)),
		"touch, no time":    first(c.TouchObjects(ctx, "a", time.Time{}, many[:1])),
		"expire, no time":   first(c.ExpireObjects(ctx, "a", time.Time{}, many[:1])),
		"touch, bad hash":   first(c.TouchObjects(ctx, "a", now, []nixid.StorePathHash{"x"})),
		"expire, bad cache": first(c.ExpireObjects(ctx, "../a", now, many[:1])),
	} {
		if !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: %v, want ErrInvalidCommand", name, err)
		}
	}
}

func first(_ int, err error) error { return err }

// TestCatalog_CacheMemo: the decoded cache kept for requests follows every
// change to the cache, and a caller changing its copy changes nothing.
func TestCatalog_CacheMemo(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	c := n.cat
	if err := c.CreateCache(ctx, Cache{Name: "m", Priority: 1, UpstreamCacheKeyNames: []string{"k"}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Cache("m")
	if err != nil || got.Priority != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	got.UpstreamCacheKeyNames[0] = "changed"
	prio := int32(2)
	if err := c.ConfigureCache(ctx, "m", CachePatch{Priority: &prio}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Cache("m"); got.Priority != 2 || got.UpstreamCacheKeyNames[0] != "k" {
		t.Fatalf("after configure: %+v", got)
	}
	if err := c.DestroyCache(ctx, "m", HardDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cache("m"); !errors.Is(err, ErrNoSuchCache) {
		t.Fatalf("after destroy: %v", err)
	}
	if err := c.CreateCache(ctx, Cache{Name: "m", Priority: 3}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Cache("m"); got.Priority != 3 {
		t.Fatalf("created again: %+v", got)
	}
}
