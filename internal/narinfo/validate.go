package narinfo

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/garret-cache/garret/internal/nixid"
)

// A narinfo is read by every client that substitutes from the cache, and
// each of its fields is one "Key: value" line: a value with a newline in it
// is a line of the uploader's choosing (a second URL, which Nix takes over
// the first). Validate is what every upload route runs before storing a
// narinfo's fields, whether they came as a narinfo (Nix's PUT) or as JSON
// (Attic's upload-path); Render refuses what Validate would.

// ErrField wraps every Validate and Render failure; errors.As to a
// *FieldError names the field.
var ErrField = errors.New("narinfo: invalid field")

// FieldError is a field Validate refused.
type FieldError struct {
	Field string // the narinfo key: "System", "Sig", …
	Value string // shortened
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("narinfo field %s %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() []error { return []error{ErrField, e.Err} }

func fieldErr(field, value string, format string, args ...any) error {
	return &FieldError{Field: field, Value: shorten(value), Err: fmt.Errorf(format, args...)}
}

// UnknownDeriver is what Nix writes for a path without a deriver.
const UnknownDeriver = "unknown-deriver"

// systemRE is Nix's system type, "<cpu>-<os>" ("x86_64-linux",
// "aarch64-darwin", "riscv64-linux", "x86_64-unknown-linux-gnu" for
// config triples) or "builtin" for builtin derivations: names of letters,
// digits and "_.+" joined by '-'.
var systemRE = regexp.MustCompile(`^[A-Za-z0-9_.+]+(-[A-Za-z0-9_.+]+)*$`)

// keyNameRE bounds signature key names to printable characters without
// ':' or spaces (Nix only requires them non-empty; every key name Nix or
// Attic makes, like "cache.nixos.org-1", fits).
var keyNameRE = regexp.MustCompile(`^[!-9;-~]+$`)

// Validate checks every field of n as Nix would parse it and as Garret will
// serve it: storeDir is the cache's store directory (StorePath must be
// directly in it), no field has a control character, References are store
// path base names, Deriver a ".drv" base name (or empty), System Nix's
// system format, CA Nix's content address, each Sig "keyname:base64" of a
// 64-byte Ed25519 signature. URL, Compression and FileHash are only checked
// for control characters here (Parse checks the rest). Empty optional
// fields pass.
func (n *NarInfo) Validate(storeDir string) error {
	for _, f := range []struct{ key, v string }{
		{"StorePath", n.StorePath}, {"URL", n.URL}, {"Compression", n.Compression}, {"FileHash", n.FileHash},
		{"Deriver", n.Deriver}, {"System", n.System}, {"CA", n.CA},
	} {
		if err := noControl(f.key, f.v); err != nil {
			return err
		}
	}
	dir, _, _, err := nixid.SplitStorePath(n.StorePath)
	if err != nil {
		return fieldErr("StorePath", n.StorePath, "%v", err)
	}
	if dir != storeDir {
		return fieldErr("StorePath", n.StorePath, "not in the cache's store directory %s", storeDir)
	}
	for _, ref := range n.References {
		if err := noControl("References", ref); err != nil {
			return err
		}
		if err := checkBaseName(ref); err != nil {
			return fieldErr("References", ref, "%v", err)
		}
	}
	if err := ValidateDeriver(n.Deriver); err != nil {
		return err
	}
	if err := ValidateSystem(n.System); err != nil {
		return err
	}
	if err := ValidateCA(n.CA); err != nil {
		return err
	}
	for _, s := range n.Sigs {
		if err := ValidateSig(s); err != nil {
			return err
		}
	}
	return nil
}

func noControl(field, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fieldErr(field, v, "control character %q at byte %d", c, i)
		}
	}
	return nil
}

// ValidateDeriver accepts "", UnknownDeriver or a store path base name
// ending in ".drv".
func ValidateDeriver(d string) error {
	if d == "" || d == UnknownDeriver {
		return nil
	}
	if err := noControl("Deriver", d); err != nil {
		return err
	}
	if err := checkBaseName(d); err != nil {
		return fieldErr("Deriver", d, "%v", err)
	}
	if !strings.HasSuffix(d, ".drv") {
		return fieldErr("Deriver", d, "not a derivation (a base name ending in .drv)")
	}
	return nil
}

// ValidateSystem accepts "" or a system type like "x86_64-linux".
func ValidateSystem(s string) error {
	if s == "" {
		return nil
	}
	if err := noControl("System", s); err != nil {
		return err
	}
	if !systemRE.MatchString(s) {
		return fieldErr("System", s, "not a Nix system type like x86_64-linux")
	}
	return nil
}

// hashSizes are the hash algorithms Nix knows, by name, with their sizes.
var hashSizes = map[string]int{"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64, "blake3": 32}

// ValidateCA accepts "" or a content address as Nix renders and parses it:
// "text:<algo>:<hash>" or "fixed:[r:|git:]<algo>:<hash>", the hash in
// base16, nix32 or base64 (told apart by length, as Nix does).
func ValidateCA(ca string) error {
	if ca == "" {
		return nil
	}
	if err := noControl("CA", ca); err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(ca, "text:")
	if !ok {
		if rest, ok = strings.CutPrefix(ca, "fixed:"); !ok {
			return fieldErr("CA", ca, "not a content address (text:… or fixed:…)")
		}
		if r, ok := strings.CutPrefix(rest, "r:"); ok {
			rest = r
		} else if r, ok := strings.CutPrefix(rest, "git:"); ok {
			rest = r
		}
	}
	algo, h, ok := strings.Cut(rest, ":")
	size, known := hashSizes[algo]
	if !ok || !known {
		return fieldErr("CA", ca, "want <method>:<algo>:<hash> with algo md5, sha1, sha256, sha512 or blake3")
	}
	if err := checkHashText(h, size); err != nil {
		return fieldErr("CA", ca, "%v", err)
	}
	return nil
}

// checkHashText decodes a hash of size bytes in the encoding its length
// names: base16, nix32 or base64.
func checkHashText(h string, size int) error {
	var err error
	var n int
	switch len(h) {
	case hex.EncodedLen(size):
		var b []byte
		b, err = hex.DecodeString(h)
		n = len(b)
	case nixbase32.EncodedLen(size):
		var b []byte
		b, err = nixbase32.DecodeString(h)
		n = len(b)
	case base64.StdEncoding.EncodedLen(size):
		var b []byte
		b, err = base64.StdEncoding.DecodeString(h)
		n = len(b)
	default:
		return fmt.Errorf("hash has the wrong length (%d) for its algorithm", len(h))
	}
	if err == nil && n != size {
		err = fmt.Errorf("hash decodes to %d bytes, want %d", n, size)
	}
	return err
}

// ValidateSig accepts "keyname:base64" of a 64-byte Ed25519 signature.
func ValidateSig(s string) error {
	if err := noControl("Sig", s); err != nil {
		return err
	}
	name, sig, ok := strings.Cut(s, ":")
	if !ok || !keyNameRE.MatchString(name) {
		return fieldErr("Sig", s, "want keyname:base64(signature)")
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(b) != 64 {
		return fieldErr("Sig", s, "not the base64 of a 64-byte Ed25519 signature")
	}
	return nil
}

// Render is String for serving: it refuses a narinfo any field of which
// holds a control character (a newline would add a line of the uploader's
// choosing), whatever route or catalog entry the fields came from.
func (n *NarInfo) Render() (string, error) {
	for _, f := range []struct{ key, v string }{
		{"StorePath", n.StorePath}, {"URL", n.URL}, {"Compression", n.Compression}, {"FileHash", n.FileHash},
		{"Deriver", n.Deriver}, {"System", n.System}, {"CA", n.CA},
	} {
		if err := noControl(f.key, f.v); err != nil {
			return "", err
		}
	}
	for _, ref := range n.References {
		if err := noControl("References", ref); err != nil {
			return "", err
		}
		if strings.ContainsRune(ref, ' ') {
			return "", fieldErr("References", ref, "a space in a reference")
		}
	}
	for _, s := range n.Sigs {
		if err := noControl("Sig", s); err != nil {
			return "", err
		}
	}
	return n.String(), nil
}
