package p2p

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
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
