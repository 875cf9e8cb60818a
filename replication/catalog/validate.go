package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/garret-cache/garret/internal/nixid"
)

// ErrInvalidCommand is a command that cannot enter the log: of a type this
// node does not know, missing a part, naming something that is not a name,
// or over a size bound (limits.go). The wrapping error says which.
var ErrInvalidCommand = errors.New("catalog: invalid command")

func (t cmdType) String() string {
	switch t {
	case cmdCreateCache:
		return "create-cache"
	case cmdConfigureCache:
		return "configure-cache"
	case cmdDestroyCache:
		return "destroy-cache"
	case cmdPutObject:
		return "put-object"
	case cmdDeleteObjects:
		return "delete-objects"
	case cmdPutFile:
		return "put-file"
	case cmdRevokeToken:
		return "revoke-token"
	case cmdSetClusterID:
		return "set-cluster-id"
	case cmdRevokeTokens:
		return "revoke-tokens"
	}
	return fmt.Sprintf("unknown command type %d", uint8(t))
}

func invalid(t cmdType, format string, args ...any) error {
	return fmt.Errorf("%w: %v: %s", ErrInvalidCommand, t, fmt.Sprintf(format, args...))
}

// wellFormed says why c cannot be applied at all: a type this node does not
// know (a newer node wrote it), a missing part, a cache name or store path
// hash that does not parse. Apply skips such a command on every replica
// alike, so this check is a pure function of the command and, for a given
// type, is never made stricter in a later version; size bounds are not part
// of it (see validate).
func (c *command) wellFormed() error {
	name := func(n nixid.CacheName) error {
		if _, err := nixid.ParseCacheName(string(n)); err != nil {
			return invalid(c.Type, "%v", err)
		}
		return nil
	}
	switch c.Type {
	case cmdCreateCache:
		if c.Cache == nil {
			return invalid(c.Type, "no cache")
		}
		return name(c.Cache.Name)
	case cmdConfigureCache:
		if c.Patch == nil {
			return invalid(c.Type, "no patch")
		}
		return name(c.Name)
	case cmdDestroyCache:
		return name(c.Name)
	case cmdPutObject:
		if c.Object == nil {
			return invalid(c.Type, "no object")
		}
		if _, err := nixid.ParseStorePathHash(string(c.Object.StorePathHash)); err != nil {
			return invalid(c.Type, "%v", err)
		}
		return name(c.Object.Cache)
	case cmdDeleteObjects:
		for _, h := range c.Hashes {
			if _, err := nixid.ParseStorePathHash(string(h)); err != nil {
				return invalid(c.Type, "%v", err)
			}
		}
		return name(c.Name)
	case cmdPutFile:
		if c.File == nil || c.File.Name == "" {
			return invalid(c.Type, "no file name")
		}
		return name(c.File.Cache)
	case cmdRevokeToken:
		if c.JTI == "" {
			return invalid(c.Type, "no token id")
		}
	case cmdSetClusterID:
		if c.ClusterID == "" {
			return invalid(c.Type, "no cluster id")
		}
	case cmdRevokeTokens:
		r := c.Rule
		switch {
		case r == nil || (r.Subject == "" && r.CachePattern == ""):
			return invalid(c.Type, "a rule needs a subject, a cache pattern or both")
		case r.IssuedBefore.IsZero():
			return invalid(c.Type, "a rule needs an issued-before time")
		case r.CachePattern != "" && !cachePatternRE.MatchString(r.CachePattern):
			return invalid(c.Type, "cache pattern %q is not a cache name with '*' wildcards", r.CachePattern)
		}
	default:
		return invalid(c.Type, "this node does not know the command (written by a newer Garret?)")
	}
	return nil
}

// cachePatternRE is Attic's token cache-pattern alphabet (as api/token's).
var cachePatternRE = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$`)

// validate is the check every command passes on the leader before it is
// proposed: wellFormed, the size bounds of limits.go, and the encoded size.
// It returns the command as it will be written into the log.
func (c *command) validate() ([]byte, error) {
	if err := c.wellFormed(); err != nil {
		return nil, err
	}
	if err := c.bounded(); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, invalid(c.Type, "%v", err)
	}
	if len(raw) > MaxCommandBytes {
		return nil, invalid(c.Type, "%d bytes encoded, more than the %d a command may take", len(raw), MaxCommandBytes)
	}
	return raw, nil
}

// bounded checks each field against its bound.
func (c *command) bounded() error {
	var err error
	str := func(what, s string, max int) {
		if err == nil && len(s) > max {
			err = invalid(c.Type, "%s is %d bytes, more than %d", what, len(s), max)
		}
	}
	list := func(what string, l []string, maxItems, maxEach int) {
		if err == nil && len(l) > maxItems {
			err = invalid(c.Type, "%d %s, more than %d", len(l), what, maxItems)
		}
		for i, s := range l {
			str(fmt.Sprintf("%s %d", what, i+1), s, maxEach)
		}
	}
	switch c.Type {
	case cmdCreateCache:
		cc := c.Cache
		str("the keypair", cc.Keypair, MaxStringBytes)
		str("the store dir", cc.StoreDir, MaxStringBytes)
		list("upstream cache key names", cc.UpstreamCacheKeyNames, MaxListItems, MaxStringBytes)
	case cmdConfigureCache:
		p := c.Patch
		if p.Keypair != nil {
			str("the keypair", *p.Keypair, MaxStringBytes)
		}
		if p.StoreDir != nil {
			str("the store dir", *p.StoreDir, MaxStringBytes)
		}
		if p.UpstreamCacheKeyNames != nil {
			list("upstream cache key names", *p.UpstreamCacheKeyNames, MaxListItems, MaxStringBytes)
		}
	case cmdPutObject:
		o := c.Object
		str("the store path", o.StorePath, MaxStorePathBytes)
		list("references", o.References, MaxReferences, MaxReferenceBytes)
		list("signatures", o.Sigs, MaxSigs, MaxSigBytes)
		str("the deriver", o.Deriver, MaxDeriverBytes)
		str("the system", o.System, MaxSystemBytes)
		str("the content address", o.CA, MaxCABytes)
		str("the uploader", o.CreatedBy, MaxStringBytes)
		if o.Upload != nil {
			str("the NAR URL", o.Upload.URL, MaxStringBytes)
			str("the compression", o.Upload.Compression, MaxStringBytes)
		}
		if err == nil && (o.NarSize < 0 || o.FileSize < 0) {
			err = invalid(c.Type, "negative size")
		}
	case cmdPutFile:
		f := c.File
		str("the file name", f.Name, MaxStringBytes)
		str("the content type", f.ContentType, MaxStringBytes)
		str("the content encoding", f.ContentEncoding, MaxStringBytes)
		if err == nil && f.Size < 0 {
			err = invalid(c.Type, "negative size")
		}
	case cmdRevokeToken:
		str("the token id", c.JTI, MaxStringBytes)
	case cmdSetClusterID:
		str("the cluster id", c.ClusterID, MaxStringBytes)
	case cmdRevokeTokens:
		str("the subject", c.Rule.Subject, MaxStringBytes)
	}
	return err
}
