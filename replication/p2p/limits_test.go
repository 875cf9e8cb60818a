package p2p

import (
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestNewHost_RequiresPSK: no host runs outside a private network.
func TestNewHost_RequiresPSK(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	if h, err := NewHost(Config{PrivateKey: key}); err == nil {
		_ = h.Close()
		t.Fatal("a host without a private-network key started")
	}
}

// TestPNet_HostWithoutPSKCannotConnect: a plain libp2p host (no private
// network at all) cannot connect to a node's host.
func TestPNet_HostWithoutPSKCannotConnect(t *testing.T) {
	a := pnetHost(t, "the-right-cluster-secret-0123456789abcdef")
	plain, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := plain.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err == nil {
		t.Fatal("a host without the private-network key connected")
	}
}

// TestResourceManager_PeerStreamLimit: one peer holding more streams open on
// a protocol than MaxStreamsPerPeerProtocol is refused the next, while
// another peer's traffic on it still works; a Call that meets the limit
// waits for a slot and is served once one frees.
func TestResourceManager_PeerStreamLimit(t *testing.T) {
	const proto protocol.ID = "/garret/test-hold/1"
	secret := "the-right-cluster-secret-0123456789abcdef"
	srv, greedy, other := pnetHost(t, secret), pnetHost(t, secret), pnetHost(t, secret)
	release := make(chan struct{})
	srv.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		_, _ = s.Write([]byte("{}\n")) // accepted: a JSON reply, for Call
		gone := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, s); close(gone) }()
		select { // hold the stream until the test ends or the caller resets it
		case <-release:
		case <-gone:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, h := range []interface {
		Connect(context.Context, peer.AddrInfo) error
	}{greedy, other} {
		if err := h.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: srv.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	// accepted opens a stream and waits for the handler's first byte.
	accepted := func(s network.Stream, err error) error {
		if err != nil {
			return err
		}
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = io.ReadFull(s, b[:])
		return err
	}
	var held []network.Stream
	defer func() {
		for _, s := range held {
			_ = s.Reset()
		}
	}()
	for i := 0; i < MaxStreamsPerPeerProtocol; i++ {
		s, err := greedy.NewStream(ctx, srv.ID(), proto)
		if err := accepted(s, err); err != nil {
			t.Fatalf("stream %d within the limit: %v", i+1, err)
		}
		held = append(held, s)
	}
	s, err := greedy.NewStream(ctx, srv.ID(), proto)
	err = accepted(s, err)
	if err == nil {
		t.Fatalf("stream %d beyond the per-peer limit was served", MaxStreamsPerPeerProtocol+1)
	}
	if !Refused(err) {
		t.Fatalf("stream beyond the limit failed with %v; want a resource-limit refusal", err)
	}
	if err := accepted(other.NewStream(ctx, srv.ID(), proto)); err != nil {
		t.Fatalf("another peer's stream: %v", err)
	}
	// A caller that meets the limit waits for a slot.
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = held[0].Reset()
	}()
	start := time.Now()
	if err := Call(ctx, greedy, srv.ID(), proto, nil, &struct{}{}); err != nil {
		t.Fatalf("Call at the limit did not wait for a slot: %v", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("Call was served after %s, before a slot was free", waited)
	}
	close(release)
}
