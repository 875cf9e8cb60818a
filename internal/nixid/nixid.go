package nixid

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// Sentinel errors returned by the parsers; wrap-checked with errors.Is.
var (
	ErrInvalidCacheName     = errors.New("nixid: invalid cache name")
	ErrInvalidStorePathHash = errors.New("nixid: invalid store path hash")
	ErrInvalidNarHash       = errors.New("nixid: invalid NAR hash")
	ErrInvalidStorePath     = errors.New("nixid: invalid store path")
)

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

// validCacheName is ^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$ without a regexp
// (every request parses a cache name; nixid's test holds the two together).
func validCacheName(s string) bool {
	if len(s) == 0 || len(s) > 50 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '+' {
			return false
		}
	}
	return true
}

// validPathHash is ^[0123456789abcdfghijklmnpqrsvwxyz]{32}$: 32 nix-base32
// characters (no e, o, u, t).
func validPathHash(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' && c != 'e' && c != 'o' && c != 'u' && c != 't') {
			return false
		}
	}
	return true
}

// CacheName is a validated Attic cache name: ^[A-Za-z0-9][A-Za-z0-9-_+]{0,49}$.
type CacheName string

// ParseCacheName validates s as a cache name.
func ParseCacheName(s string) (CacheName, error) {
	if !validCacheName(s) {
		return "", fmt.Errorf("%w: %q (want 1-50 of [A-Za-z0-9-_+], starting alphanumeric)", ErrInvalidCacheName, s)
	}
	return CacheName(s), nil
}

// String returns the name.
func (c CacheName) String() string { return string(c) }

// StorePathHash is the 32-character nix-base32 hash part of a store path.
type StorePathHash string

// ParseStorePathHash validates s as a store-path hash.
func ParseStorePathHash(s string) (StorePathHash, error) {
	if !validPathHash(s) {
		return "", fmt.Errorf("%w: %q (want 32 nix-base32 characters)", ErrInvalidStorePathHash, s)
	}
	return StorePathHash(s), nil
}

// String returns the hash.
func (h StorePathHash) String() string { return string(h) }

// SplitStorePath splits "/nix/store/<hash>-<name>" into store dir, hash and name.
// It also accepts a base name "<hash>-<name>" (storeDir is then "").
func SplitStorePath(p string) (storeDir string, hash StorePathHash, name string, err error) {
	base := p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		storeDir, base = p[:i], p[i+1:]
		if storeDir == "" || !strings.HasPrefix(storeDir, "/") {
			return "", "", "", fmt.Errorf("%w: %q", ErrInvalidStorePath, p)
		}
	}
	if len(base) < 34 || base[32] != '-' {
		return "", "", "", fmt.Errorf("%w: %q", ErrInvalidStorePath, p)
	}
	hash, err = ParseStorePathHash(base[:32])
	if err != nil {
		return "", "", "", fmt.Errorf("%w: %q", ErrInvalidStorePath, p)
	}
	name = base[33:]
	if err := CheckStorePathName(name); err != nil {
		return "", "", "", fmt.Errorf("%w: %q: %v", ErrInvalidStorePath, p, err)
	}
	return storeDir, hash, name, nil
}

// MaxStorePathNameLen is Nix's StorePath::MaxPathLen.
const MaxStorePathNameLen = 211

// CheckStorePathName applies Nix's own rules for the name part of a store
// path (libstore/path.cc checkName), nothing stricter: 1-211 characters of
// [A-Za-z0-9+-._?=]; a leading '.' is allowed (Nix >= 2.4) except for the
// names "." and "..", and names whose first dash-separated component is
// "." or ".." (".-x", "..-x").
func CheckStorePathName(name string) error {
	switch {
	case name == "":
		return errors.New("name must not be empty")
	case len(name) > MaxStorePathNameLen:
		return fmt.Errorf("name must be no longer than %d characters", MaxStorePathNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not valid", name)
	case strings.HasPrefix(name, ".-") || strings.HasPrefix(name, "..-"):
		return fmt.Errorf("name %q is not valid: its first dash-separated component must not be %q", name, name[:strings.IndexByte(name, '-')])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("+-._?=", c) >= 0) {
			return fmt.Errorf("name contains the illegal character %q", c)
		}
	}
	return nil
}

// NarHash is the SHA-256 of an uncompressed NAR.
type NarHash [32]byte

// ParseNarHash accepts "sha256:<64 hex>", "sha256:<52 nix-base32>" and SRI "sha256-<base64>".
func ParseNarHash(s string) (NarHash, error) {
	var h NarHash
	var raw []byte
	var err error
	switch {
	case strings.HasPrefix(s, "sha256:"):
		v := s[len("sha256:"):]
		switch len(v) {
		case 64:
			raw, err = hex.DecodeString(v)
		case 52:
			raw, err = nixbase32.DecodeString(v)
		default:
			err = errors.New("wrong length")
		}
	case strings.HasPrefix(s, "sha256-"):
		raw, err = base64.StdEncoding.DecodeString(s[len("sha256-"):])
	default:
		err = errors.New("want sha256:<hex|nix32> or sha256-<base64>")
	}
	if err == nil && len(raw) != 32 {
		err = errors.New("wrong length")
	}
	if err != nil {
		return h, fmt.Errorf("%w: %q: %v", ErrInvalidNarHash, s, err)
	}
	copy(h[:], raw)
	return h, nil
}

// String renders the hash the way Nix writes it in narinfo files: "sha256:<nix32>".
func (h NarHash) String() string { return "sha256:" + nixbase32.EncodeToString(h[:]) }

// Hex renders "sha256:<hex>", the form Attic's API uses.
func (h NarHash) Hex() string { return "sha256:" + hex.EncodeToString(h[:]) }

// IsZero reports whether h is unset.
func (h NarHash) IsZero() bool { return h == NarHash{} }

// MarshalText renders "sha256:<nix32>".
func (h NarHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText accepts every form ParseNarHash does.
func (h *NarHash) UnmarshalText(b []byte) error {
	v, err := ParseNarHash(string(b))
	*h = v
	return err
}
