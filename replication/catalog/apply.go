package catalog

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/garret-cache/garret/internal/nixid"
)

// applier is the batch one log entry is applied in, with the entry's index:
// every apply function gets it, so what it changes can be recorded by
// index (see changes.go).
type applier struct {
	*pebble.Batch
	index uint64
	prev  uint64 // the last entry applied before this one
	next  uint32 // position of the next change record within the entry
}

// applyCommand applies one well-formed command.
func applyCommand(b *applier, c command) result {
	if c.p == nil {
		return result{err: invalid(c.Type, "this node does not know the command")} // wellFormed let it through
	}
	return c.p.apply(b)
}

// cacheExists reads through the batch, so earlier commands of the same entry count.
func cacheExists(b pebble.Reader, name nixid.CacheName) bool {
	ok, err := getJSON(b, cacheKey(name), nil)
	if err != nil {
		panic(stateError{err})
	}
	return ok
}

// stateError is an I/O error of the state store met while applying an
// entry. Apply functions panic with it (they are deep in a batch and have
// no error path); fsm.writeEntries recovers it and retries the entries.
type stateError struct{ err error }

func (e stateError) Error() string { return "catalog: state store: " + e.err.Error() }
func (e stateError) Unwrap() error { return e.err }

func check(err error) {
	if err != nil {
		panic(stateError{err})
	}
}

// apply refuses a name in use or left by a soft-deleted cache
// with the same error, as Attic's unique name column does.
func (c *createCache) apply(b *applier) result {
	k := cacheKey(c.Cache.Name)
	for _, taken := range [][]byte{k, tombstoneKey(c.Cache.Name)} {
		if ok, err := getJSON(b, taken, nil); err != nil {
			panic(stateError{err})
		} else if ok {
			return result{err: ErrCacheExists}
		}
	}
	check(b.Set(k, mustJSON(c.Cache), nil))
	return result{}
}

func (c *configureCache) apply(b *applier) result {
	var cache Cache
	k := cacheKey(c.Name)
	if ok, err := getJSON(b, k, &cache); err != nil {
		panic(stateError{err})
	} else if !ok {
		return result{err: ErrNoSuchCache}
	}
	p := c.Patch
	if p.Keypair != nil {
		cache.Keypair = *p.Keypair
	}
	if p.IsPublic != nil {
		cache.IsPublic = *p.IsPublic
	}
	if p.StoreDir != nil {
		cache.StoreDir = *p.StoreDir
	}
	if p.Priority != nil {
		cache.Priority = *p.Priority
	}
	if p.UpstreamCacheKeyNames != nil {
		cache.UpstreamCacheKeyNames = *p.UpstreamCacheKeyNames
	}
	if p.SetRetention {
		cache.RetentionPeriod = p.RetentionPeriod
	}
	check(b.Set(k, mustJSON(cache), nil))
	return result{}
}

func (c *destroyCache) apply(b *applier) result {
	k := cacheKey(c.Name)
	if ok, err := getJSON(b, k, nil); err != nil {
		panic(stateError{err})
	} else if !ok {
		return result{err: ErrNoSuchCache}
	}
	check(b.Delete(k, nil))
	// Soft or hard, the objects and files go: nothing can undelete a
	// cache, so keeping them would only hold storage from the sweep.
	for _, p := range [][]byte{objectPrefix(c.Name), filePrefix(c.Name), narURLPrefix(c.Name)} {
		check(b.DeleteRange(p, prefixEnd(p), nil))
	}
	if c.Tombstone {
		check(b.Set(tombstoneKey(c.Name), mustJSON(tombstone{Name: c.Name, DeletedAt: c.DeletedAt}), nil))
	}
	b.record(Change{Op: OpDestroyCache, Cache: c.Name})
	return result{}
}

func (c *putObject) apply(b *applier) result {
	o := c.Object
	if !cacheExists(b, o.Cache) {
		return result{err: ErrNoSuchCache}
	}
	k := objectKey(o.Cache, o.StorePathHash)
	var old Object
	if ok, err := getJSON(b, k, &old); err != nil {
		panic(stateError{err})
	} else if ok {
		unindexNarURL(b, old)
	}
	check(b.Set(k, mustJSON(o), nil))
	if o.Upload != nil && o.Upload.URL != "" {
		check(b.Set(narURLKey(o.Cache, o.Upload.URL), mustJSON(o.StorePathHash), nil))
	}
	ch := Change{Op: OpPutObject, Cache: o.Cache, Hash: o.StorePathHash, Manifest: o.Manifest, Size: o.FileSize, At: o.CreatedAt}
	if o.Upload != nil {
		ch.File = o.Upload.File
	}
	b.record(ch)
	return result{}
}

// unindexNarURL drops o's upload URL from the index, unless another object
// (with the same NAR file) has taken it over since.
func unindexNarURL(b *applier, o Object) {
	if o.Upload == nil || o.Upload.URL == "" {
		return
	}
	k := narURLKey(o.Cache, o.Upload.URL)
	var h nixid.StorePathHash
	if ok, err := getJSON(b, k, &h); err != nil {
		panic(stateError{err})
	} else if ok && h == o.StorePathHash {
		check(b.Delete(k, nil))
	}
}

func (c *deleteObjects) apply(b *applier) result {
	if !cacheExists(b, c.Name) {
		return result{err: ErrNoSuchCache}
	}
	n := 0
	eachStored(b, c.Name, c.Hashes, func(k []byte, o Object) {
		removeObject(b, c.Name, k, o)
		n++
	})
	return result{count: n}
}

// eachStored calls fn with the key and value of each of the listed objects
// that is stored.
func eachStored(b *applier, cache nixid.CacheName, hashes []nixid.StorePathHash, fn func(k []byte, o Object)) {
	for _, h := range hashes {
		k := objectKey(cache, h)
		var o Object
		if ok, err := getJSON(b, k, &o); err != nil {
			panic(stateError{err})
		} else if ok {
			fn(k, o)
		}
	}
}

// removeObject deletes a stored object and records it in the change log.
func removeObject(b *applier, cache nixid.CacheName, k []byte, o Object) {
	unindexNarURL(b, o)
	check(b.Delete(k, nil))
	b.record(Change{Op: OpDeleteObject, Cache: cache, Hash: o.StorePathHash})
}

func (c *touchObjects) apply(b *applier) result {
	n := 0
	eachStored(b, c.Name, c.Hashes, func(k []byte, o Object) {
		if o.AccessedAt.Before(c.At) {
			o.AccessedAt = c.At
			check(b.Set(k, mustJSON(o), nil))
			n++
		}
	})
	return result{count: n}
}

func (c *expireObjects) apply(b *applier) result {
	n := 0
	eachStored(b, c.Name, c.Hashes, func(k []byte, o Object) {
		if o.LastUsed().Before(c.Before) {
			removeObject(b, c.Name, k, o)
			n++
		}
	})
	return result{count: n}
}

func (c *putFile) apply(b *applier) result {
	if !cacheExists(b, c.File.Cache) {
		return result{err: ErrNoSuchCache}
	}
	check(b.Set(fileKey(c.File.Cache, c.File.Name), mustJSON(c.File), nil))
	b.record(Change{Op: OpPutFile, Cache: c.File.Cache, Name: c.File.Name, Manifest: c.File.Manifest, Size: c.File.Size, At: c.File.CreatedAt})
	return result{}
}

func (c *revokeToken) apply(b *applier) result {
	check(b.Set(revokedKey(c.JTI), mustJSON(c.ExpiresAt), nil))
	return result{}
}

// apply records the cluster's identity once; later proposals
// (a second bootstrap race) leave the first one in place.
func (c *setClusterID) apply(b *applier) result {
	if ok, err := getJSON(b, keyClusterID, nil); err != nil {
		panic(stateError{err})
	} else if ok {
		return result{}
	}
	check(b.Set(keyClusterID, mustJSON(c.ClusterID), nil))
	return result{}
}

// apply stores a rule; one with the same subject and pattern
// is replaced, keeping the later issued-before time (it revokes a superset).
func (c *revokeTokens) apply(b *applier) result {
	r := *c.Rule
	k := ruleKey(r)
	var old RevocationRule
	ok, err := getJSON(b, k, &old)
	if err != nil {
		panic(stateError{err})
	}
	if ok {
		if old.IssuedBefore.After(r.IssuedBefore) {
			r.IssuedBefore = old.IssuedBefore
		}
	} else if n := countKeys(b, rulePrefix, MaxRevocationRules); n >= MaxRevocationRules {
		return result{err: ErrTooManyRevocationRules}
	}
	check(b.Set(k, mustJSON(r), nil))
	return result{}
}

// countKeys counts the keys under prefix, stopping at limit.
func countKeys(b *applier, prefix []byte, limit int) int {
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		panic(stateError{err})
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && n < limit; it.Next() {
		n++
	}
	return n
}
