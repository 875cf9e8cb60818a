package p2p

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/garret-cache/garret/internal/durable"
)

// Labels give each use of the cluster secret its own key, so a leak of one
// (say, memberlist's) does not open the other.
const (
	LabelPNet       = "garret/libp2p-pnet/v1"
	LabelMemberlist = "garret/memberlist/v1"
)

// ErrShortSecret is returned for a cluster secret under 32 bytes.
var ErrShortSecret = errors.New("p2p: the cluster secret must be at least 32 bytes (garretd gen-secret prints one)")

// DeriveKey derives a 32-byte key for label from the cluster secret with
// HKDF-SHA256.
func DeriveKey(secret, label string) ([]byte, error) {
	if len(secret) < 32 {
		return nil, ErrShortSecret
	}
	return hkdf.Key(sha256.New, []byte(secret), nil, label, 32)
}

// LoadOrCreateSecret reads a lone node's own cluster secret from path,
// creating it (64 random hex digits, mode 0600) on first use. A lone node
// keeps its libp2p host inside a private network nobody else holds the key
// of, so no other process, local or remote, can open a stream to it.
func LoadOrCreateSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		var b [32]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		data = []byte(hex.EncodeToString(b[:]) + "\n")
		if err := durable.WriteFile(path, data, 0o600); err != nil {
			return "", fmt.Errorf("p2p: node secret: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("p2p: read node secret: %w", err)
	}
	secret := strings.TrimSpace(string(data))
	if len(secret) < 32 {
		return "", fmt.Errorf("p2p: node secret %s: shorter than 32 bytes; delete it and restart to make a new one", path)
	}
	return secret, nil
}
