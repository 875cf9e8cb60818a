package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestDeriveKey_DistinctPerLabel(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef-cluster"
	a, err := DeriveKey(secret, LabelPNet)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DeriveKey(secret, LabelMemberlist)
	again, _ := DeriveKey(secret, LabelPNet)
	if len(a) != 32 || bytes.Equal(a, b) || !bytes.Equal(a, again) {
		t.Fatal("keys must be 32 bytes, stable, and distinct per label")
	}
	if _, err := DeriveKey("short", LabelPNet); err == nil {
		t.Fatal("short secret accepted")
	}
}

func pnetHost(t *testing.T, secret string) host.Host {
	t.Helper()
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	psk, err := DeriveKey(secret, LabelPNet)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(Config{PrivateKey: key, PSK: psk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestPNet_WrongSecretCannotConnect: a host without the cluster secret
// cannot even complete a connection.
func TestPNet_WrongSecretCannotConnect(t *testing.T) {
	good := "the-right-cluster-secret-0123456789abcdef"
	a, b := pnetHost(t, good), pnetHost(t, good)
	intruder := pnetHost(t, "a-wrong-cluster-secret-0123456789abcdef")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatalf("same secret: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if err := intruder.Connect(ctx2, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err == nil {
		t.Fatal("a host with the wrong secret connected")
	}
}
