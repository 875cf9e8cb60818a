package node

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/p2p"
)

// TestCheckConfig_ClusterNeedsSecret: a node that would join, gossip or wait
// to be added is refused without [cluster] secret, by CheckConfig and New
// alike, with one line saying how to make one.
func TestCheckConfig_ClusterNeedsSecret(t *testing.T) {
	for name, toml := range map[string]string{
		"gossip-listen":   "[cluster]\ngossip-listen = \"127.0.0.1:0\"",
		"join":            "[cluster]\njoin = [\"127.0.0.1:7946\"]",
		"bootstrap false": "[cluster]\nbootstrap = false",
	} {
		t.Run(name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			cfg := configWith(t, dataDir, toml)
			err := CheckConfig(cfg)
			if !errors.Is(err, ErrNoClusterSecret) || !strings.Contains(err.Error(), "garretd gen-secret") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("CheckConfig: %v; want %v", err, ErrNoClusterSecret)
			}
			if _, err := start(t, cfg); !errors.Is(err, ErrNoClusterSecret) {
				t.Fatalf("New: %v; want %v", err, ErrNoClusterSecret)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Fatalf("New created the data dir before refusing the config: %v", err)
			}
		})
	}
	withSecret := configWith(t, t.TempDir(), "[cluster]\nsecret = \"cluster-test-secret-0123456789abcdef-xyz\"\ngossip-listen = \"127.0.0.1:0\"")
	if err := CheckConfig(withSecret); err != nil {
		t.Fatalf("with a secret: %v", err)
	}
}

// TestNode_LoneNodeHasItsOwnSecret: a node without [cluster] makes a secret
// once (0600 in the data dir) and keeps it across restarts; a libp2p host
// holding it can talk to the node, one without it or with another key
// cannot even connect.
func TestNode_LoneNodeHasItsOwnSecret(t *testing.T) {
	dataDir := t.TempDir()
	n, err := start(t, testConfig(t, dataDir, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, NodeSecretFile)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no node secret: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("node secret mode %v, want 0600", fi.Mode().Perm())
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, err = start(t, testConfig(t, dataDir, "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	again, err := os.ReadFile(path)
	if err != nil || string(again) != string(first) {
		t.Fatalf("the node secret changed across a restart: %q, then %q (%v)", first, again, err)
	}
	target := peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}

	// With the node's key: a status call works.
	psk, err := p2p.DeriveKey(strings.TrimSpace(string(first)), p2p.LabelPNet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	insider := newTestHost(t, psk)
	insider.Peerstore().AddAddrs(target.ID, target.Addrs, time.Minute)
	var st catalog.Progress
	if err := p2p.Call(ctx, insider, target.ID, catalog.ProgressProtocol, nil, &st); err != nil || st.State != "leader" {
		t.Fatalf("with the node's own key: %+v, %v", st, err)
	}

	// Another key, or none at all: no connection.
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	plain, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for name, h := range map[string]interface {
		Connect(context.Context, peer.AddrInfo) error
	}{"another key": newTestHost(t, other), "no key": plain} {
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := h.Connect(cctx, target); err == nil {
			t.Errorf("a host with %s connected to a lone node", name)
		}
		ccancel()
	}
}

func newTestHost(t *testing.T, psk []byte) host.Host {
	t.Helper()
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	h, err := p2p.NewHost(p2p.Config{PrivateKey: key, PSK: psk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}
