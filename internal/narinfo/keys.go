package narinfo

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
)

// ErrBadKey wraps every ParseSecretKey and GenerateKeypair failure.
var ErrBadKey = errors.New("narinfo: bad signing key")

// SecretKey is a Nix binary-cache signing key. The zero value is not a key:
// its Sign panics; obtain one from ParseSecretKey.
type SecretKey struct{ sk signature.SecretKey }

// ParseSecretKey parses Nix's secret key format, "name:base64(64 bytes)", as
// written by `nix key generate-secret` and `nix-store
// --generate-binary-cache-key`. It also checks that the key's public half
// matches its seed, since a corrupted half would make signatures nobody can
// verify.
func ParseSecretKey(s string) (SecretKey, error) {
	s = strings.TrimSpace(s) // key files end with a newline
	sk, err := signature.LoadSecretKey(s)
	if err != nil {
		return SecretKey{}, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	_, b64, _ := strings.Cut(s, ":")
	raw, _ := base64.StdEncoding.DecodeString(b64) // LoadSecretKey decoded it already
	if !bytes.Equal(ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]), raw) {
		return SecretKey{}, fmt.Errorf("%w: public half does not match the seed", ErrBadKey)
	}
	return SecretKey{sk: sk}, nil
}

// GenerateKeypair returns a new secret key named name, in Nix's format;
// SecretKey.PublicKey gives its public half. The name must be non-empty and
// free of ':' and whitespace (by convention "<host>-<n>", e.g. "cache-1").
func GenerateKeypair(name string) (secret string, err error) {
	if name == "" || strings.ContainsAny(name, ": \t\r\n") {
		return "", fmt.Errorf("%w: invalid key name %q", ErrBadKey, name)
	}
	sk, _, err := signature.GenerateKeypair(name, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("%w: generating: %w", ErrBadKey, err)
	}
	return sk.String(), nil
}

// Name is the key's name, the part before ':'.
func (k SecretKey) Name() string { return k.sk.ToPublicKey().Name }

// PublicKey renders the public half as "name:base64(32 bytes)", the form
// Nix's trusted-public-keys setting takes.
func (k SecretKey) PublicKey() string { return k.sk.ToPublicKey().String() }

// Sign signs a fingerprint (see Fingerprint), returning "name:base64(sig)".
// Ed25519 is deterministic, so the result equals Nix's signature with the
// same key.
func (k SecretKey) Sign(fingerprint string) string {
	sig, err := k.sk.Sign(nil, fingerprint)
	if err != nil {
		// Unreachable: ed25519 signing fails only for a malformed key,
		// which ParseSecretKey never returns.
		panic(fmt.Sprintf("narinfo: sign: %v", err))
	}
	return sig.String()
}

// Verify reports whether sig ("name:base64") is a valid signature of
// fingerprint by publicKey ("name:base64"). The key and signature names must
// match; malformed input gives false.
func Verify(publicKey, fingerprint, sig string) bool {
	pk, err := signature.ParsePublicKey(strings.TrimSpace(publicKey))
	if err != nil {
		return false
	}
	s, err := signature.ParseSignature(sig)
	if err != nil {
		return false
	}
	return pk.Verify(fingerprint, s)
}
