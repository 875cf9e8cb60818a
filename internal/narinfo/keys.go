package narinfo

import (
	"crypto/rand"
	"fmt"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
)

// SecretKey is a Nix binary-cache signing key ("name:base64(64 bytes)").
type SecretKey struct{ sk signature.SecretKey }

// ParseSecretKey parses Nix's secret key format.
func ParseSecretKey(s string) (SecretKey, error) {
	sk, err := signature.LoadSecretKey(s)
	if err != nil {
		return SecretKey{}, fmt.Errorf("narinfo: secret key: %w", err)
	}
	return SecretKey{sk: sk}, nil
}

// GenerateKeypair returns a new secret key named name, in Nix's format.
func GenerateKeypair(name string) (string, error) {
	sk, _, err := signature.GenerateKeypair(name, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("narinfo: generate key: %w", err)
	}
	return sk.String(), nil
}

// Name is the key's name (the part before ':').
func (k SecretKey) Name() string { return k.sk.ToPublicKey().Name }

// PublicKey renders the public half as "name:base64(32 bytes)".
func (k SecretKey) PublicKey() string { return k.sk.ToPublicKey().String() }

// Sign signs a fingerprint, returning "name:base64(sig)". Ed25519 is deterministic.
func (k SecretKey) Sign(fingerprint string) string {
	sig, err := k.sk.Sign(nil, fingerprint)
	if err != nil {
		// ed25519 signing cannot fail with a loaded key.
		panic(fmt.Sprintf("narinfo: sign: %v", err))
	}
	return sig.String()
}

// Verify checks sig over fingerprint with publicKey ("name:base64").
func Verify(publicKey, fingerprint, sig string) bool {
	pk, err := signature.ParsePublicKey(publicKey)
	if err != nil {
		return false
	}
	s, err := signature.ParseSignature(sig)
	if err != nil {
		return false
	}
	return pk.Verify(fingerprint, s)
}
