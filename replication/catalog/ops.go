package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
)

// CreateCache adds a cache; ErrCacheExists if the name is taken.
func (c *Catalog) CreateCache(ctx context.Context, cc Cache) error {
	_, err := c.propose(ctx, cmdOf(&createCache{Cache: &cc}))
	return err
}

// ConfigureCache changes some fields of a cache.
func (c *Catalog) ConfigureCache(ctx context.Context, name nixid.CacheName, p CachePatch) error {
	_, err := c.propose(ctx, cmdOf(&configureCache{Name: name, Patch: &p}))
	return err
}

// DestroyCache removes a cache with all its objects and files; with
// SoftDelete its name stays taken for good. ErrNoSuchCache if it is missing
// (or was soft-deleted before).
func (c *Catalog) DestroyCache(ctx context.Context, name nixid.CacheName, how Deletion) error {
	d := &destroyCache{Name: name}
	if how == SoftDelete {
		d.Tombstone, d.DeletedAt = true, time.Now().UTC()
	}
	_, err := c.propose(ctx, cmdOf(d))
	return err
}

// PutObject adds or replaces a store path in a cache.
func (c *Catalog) PutObject(ctx context.Context, o Object) error {
	_, err := c.propose(ctx, cmdOf(&putObject{Object: &o}))
	return err
}

// DeleteObjects removes store paths from a cache and reports how many existed.
func (c *Catalog) DeleteObjects(ctx context.Context, cache nixid.CacheName, hashes []nixid.StorePathHash) (int, error) {
	r, err := c.propose(ctx, cmdOf(&deleteObjects{Name: cache, Hashes: hashes}))
	return r.count, err
}

// TouchObjects records that objects of a cache were downloaded at (or
// before) at, and reports how many it moved forward; missing objects, or a
// missing cache, are skipped. Callers batch downloads: at most
// MaxObjectsPerCommand hashes per call.
func (c *Catalog) TouchObjects(ctx context.Context, cache nixid.CacheName, at time.Time, hashes []nixid.StorePathHash) (int, error) {
	r, err := c.propose(ctx, cmdOf(&touchObjects{Name: cache, At: at.UTC(), Hashes: hashes}))
	return r.count, err
}

// ExpireObjects removes the listed objects of a cache whose LastUsed is
// before before (checked again when the command applies) and reports how
// many went. At most MaxObjectsPerCommand hashes per call.
func (c *Catalog) ExpireObjects(ctx context.Context, cache nixid.CacheName, before time.Time, hashes []nixid.StorePathHash) (int, error) {
	r, err := c.propose(ctx, cmdOf(&expireObjects{Name: cache, Before: before.UTC(), Hashes: hashes}))
	return r.count, err
}

// objectPage is how many objects ForEachObject reads under one hold of
// the state's read lock.
const objectPage = 256

// errPageFull ends the read of one page of ForEachObject.
var errPageFull = errors.New("catalog: page full")

// ForEachObject visits the objects of a cache in local state, in hash
// order; fn's error stops the walk and is returned. The objects are read a
// page at a time under the state's read lock and fn is called outside it,
// so fn may write to the catalog (applying a write needs that lock) and a
// walk over a large cache never holds it long; each object is as its page
// read it.
func (c *Catalog) ForEachObject(cache nixid.CacheName, fn func(Object) error) error {
	prefix := objectPrefix(cache)
	from := prefix
	for {
		page := make([]Object, 0, objectPage)
		err := scanFrom(c.fsm.st, prefix, from, func(o Object) error {
			if page = append(page, o); len(page) == objectPage {
				return errPageFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			return err
		}
		for _, o := range page {
			if err := fn(o); err != nil {
				return err
			}
		}
		if len(page) < objectPage {
			return nil
		}
		from = append(objectKey(cache, page[len(page)-1].StorePathHash), 0)
	}
}

// PutFile adds or replaces an auxiliary file.
func (c *Catalog) PutFile(ctx context.Context, f File) error {
	_, err := c.propose(ctx, cmdOf(&putFile{File: &f}))
	return err
}

// RevokeToken records a revoked token id until its expiry.
func (c *Catalog) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := c.propose(ctx, cmdOf(&revokeToken{JTI: jti, ExpiresAt: expiresAt}))
	return err
}

// Cache reads a cache from local state. Every request reads its cache, so
// decoded caches are kept until an entry changes one (fsm.cacheGen); a
// memo read just before such an entry is as if the read came first.
func (c *Catalog) Cache(name nixid.CacheName) (Cache, error) {
	gen := c.fsm.cacheGen.Load()
	if v, ok := c.fsm.caches.Load(name); ok && v.(cacheMemo).gen == gen {
		return v.(cacheMemo).cache.clone(), nil
	}
	var cc Cache
	ok, err := c.fsm.st.get(cacheKey(name), &cc)
	switch {
	case err != nil:
		return cc, err
	case !ok:
		c.fsm.caches.Delete(name) // only existing caches are kept: names asked for are not bounded
		return cc, ErrNoSuchCache
	}
	c.fsm.caches.Store(name, cacheMemo{gen: gen, cache: cc.clone()})
	return cc, nil
}

// Caches lists every cache.
func (c *Catalog) Caches() ([]Cache, error) {
	var out []Cache
	err := scan(c.fsm.st, []byte("c/"), func(cc Cache) error { out = append(out, cc); return nil })
	return out, err
}

// ObjectRaw reads a store path of a cache from local state as stored: the
// bytes change whenever anything about the object does, so a digest of them
// keys what is derived from the object (a rendered narinfo) without
// decoding it. DecodeObject decodes them.
func (c *Catalog) ObjectRaw(cache nixid.CacheName, h nixid.StorePathHash) ([]byte, error) {
	var raw []byte
	ok, err := c.fsm.st.getWith(objectKey(cache, h), func(b []byte) error { raw = bytes.Clone(b); return nil })
	if err == nil && !ok {
		err = ErrNoSuchObject
	}
	return raw, err
}

// ObjectsGeneration moves after every applied entry that changes an object
// or a cache, and on a restore from a snapshot: a value derived from objects
// and caches read after ObjectsGeneration returned g is current while it
// still returns g. (An entry is visible a moment before the generation
// moves, so such a value may be that moment old, as if read just before the
// entry.)
func (c *Catalog) ObjectsGeneration() uint64 { return c.fsm.objectsGen.Load() }

// DecodeObject decodes what ObjectRaw returned.
func DecodeObject(raw []byte) (Object, error) {
	var o Object
	return o, json.Unmarshal(raw, &o)
}

// Object reads a store path of a cache from local state.
func (c *Catalog) Object(cache nixid.CacheName, h nixid.StorePathHash) (Object, error) {
	var o Object
	ok, err := c.fsm.st.get(objectKey(cache, h), &o)
	if err == nil && !ok {
		err = ErrNoSuchObject
	}
	return o, err
}

// MissingPaths returns the hashes the cache does not hold, without duplicates.
func (c *Catalog) MissingPaths(cache nixid.CacheName, hs []nixid.StorePathHash) ([]nixid.StorePathHash, error) {
	seen := make(map[nixid.StorePathHash]bool, len(hs))
	var missing []nixid.StorePathHash
	for _, h := range hs {
		if seen[h] {
			continue
		}
		seen[h] = true
		ok, err := c.fsm.st.get(objectKey(cache, h), nil)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, h)
		}
	}
	return missing, nil
}

// File reads an auxiliary file's record.
func (c *Catalog) File(cache nixid.CacheName, name string) (File, error) {
	var f File
	ok, err := c.fsm.st.get(fileKey(cache, name), &f)
	if err == nil && !ok {
		err = ErrNoSuchFile
	}
	return f, err
}

// IsRevoked reports whether a token id was revoked. An error (the state
// cannot be read) is not an answer: the caller must refuse the token.
func (c *Catalog) IsRevoked(jti string) (bool, error) {
	return c.fsm.st.get(revokedKey(jti), nil)
}

// RevokeTokens adds a revocation rule (see RevocationRule);
// ErrTooManyRevocationRules past MaxRevocationRules.
func (c *Catalog) RevokeTokens(ctx context.Context, r RevocationRule) error {
	_, err := c.propose(ctx, cmdOf(&revokeTokens{Rule: &r}))
	return err
}

// RevocationRules lists the stored revocation rules (at most
// MaxRevocationRules).
func (c *Catalog) RevocationRules() ([]RevocationRule, error) {
	var out []RevocationRule
	err := scan(c.fsm.st, rulePrefix, func(r RevocationRule) error { out = append(out, r); return nil })
	return out, err
}

// RevocationsGeneration moves after every applied entry that revokes tokens,
// and on a restore from a snapshot: a token found not revoked after it
// returned g is still not revoked while it returns g (as with
// ObjectsGeneration, an entry is visible a moment before it moves).
func (c *Catalog) RevocationsGeneration() uint64 { return c.fsm.revocationsGen.Load() }

// ObjectByNarURL finds the object whose uploader named its NAR url
// ("nar/<filehash>.nar.xz"); ErrNoSuchNarURL if none did.
func (c *Catalog) ObjectByNarURL(cache nixid.CacheName, url string) (Object, error) {
	var h nixid.StorePathHash
	ok, err := c.fsm.st.get(narURLKey(cache, url), &h)
	if err != nil {
		return Object{}, err
	}
	if !ok {
		return Object{}, ErrNoSuchNarURL
	}
	o, err := c.Object(cache, h)
	if errors.Is(err, ErrNoSuchObject) || (err == nil && (o.Upload == nil || o.Upload.URL != url)) {
		return Object{}, ErrNoSuchNarURL
	}
	return o, err
}

// ForEachManifest visits the manifest of every object (and of the NAR file
// it was uploaded as, when kept) and of every file.
func (c *Catalog) ForEachManifest(fn func(chunkstore.ManifestID) error) error {
	return forEachManifest(c.fsm.st, fn)
}

// ForEachStored is ForEachManifest with each manifest's stored size and push
// time, as its change record has them (a syncer's full pass reads them
// here, so its backlog's bytes and lag are the same as from the log).
func (c *Catalog) ForEachStored(fn func(id chunkstore.ManifestID, size int64, at time.Time) error) error {
	return forEachStored(c.fsm.st, fn)
}

// ClusterID is the identity recorded when the cluster was bootstrapped ("" on
// a node that has not received it yet).
func (c *Catalog) ClusterID() string {
	var id string
	if ok, err := c.fsm.st.get(keyClusterID, &id); err != nil || !ok {
		return ""
	}
	return id
}

// EnsureClusterID records a new random cluster id if none exists (the
// bootstrapping leader calls it once).
func (c *Catalog) EnsureClusterID(ctx context.Context) (string, error) {
	if id := c.ClusterID(); id != "" {
		return id, nil
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	if _, err := c.propose(ctx, cmdOf(&setClusterID{ClusterID: hex.EncodeToString(b[:])})); err != nil {
		return "", err
	}
	return c.ClusterID(), nil
}
