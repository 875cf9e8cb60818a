package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/garret-cache/garret/internal/durable"
	"github.com/garret-cache/garret/internal/logbridge"
	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// RaftProtocol is the libp2p protocol Raft's RPCs run on.
const RaftProtocol protocol.ID = "/garret/raft/1"

// LoadOrCreateIdentity reads the node's key from path, creating it (mode
// 0600) on first use.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, peer.ID, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, _, gerr := crypto.GenerateEd25519Key(rand.Reader)
		if gerr != nil {
			return nil, "", gerr
		}
		if data, err = crypto.MarshalPrivateKey(key); err != nil {
			return nil, "", err
		}
		if err := durable.WriteFile(path, data, 0o600); err != nil {
			return nil, "", fmt.Errorf("p2p: identity: %w", err)
		}
	} else if err != nil {
		return nil, "", fmt.Errorf("p2p: read identity: %w", err)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("p2p: identity %s: %w", path, err)
	}
	id, err := peer.IDFromPrivateKey(key)
	return key, id, err
}

// Config configures the host.
type Config struct {
	ListenAddrs []string // multiaddrs or "host:port"; default /ip4/127.0.0.1/tcp/0
	// AdvertiseAddrs, when set, are the only addresses the host announces
	// (behind NAT or a port mapping); multiaddrs or "host:port".
	AdvertiseAddrs []string
	PrivateKey     crypto.PrivKey
	// PSK is the 32-byte private-network key (DeriveKey(secret, LabelPNet)),
	// required: only holders of the same key can complete a connection.
	PSK []byte
	// Metrics is the node's registry: libp2p's own series (swarm,
	// identify, resource manager: connections, streams, memory and what
	// the limits blocked) go there. nil: libp2p's metrics are off.
	Metrics prometheus.Registerer
}

// ToMultiaddr accepts a multiaddr or "host:port".
func ToMultiaddr(s string) (ma.Multiaddr, error) {
	if strings.HasPrefix(s, "/") {
		return ma.NewMultiaddr(s)
	}
	h, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("p2p: address %q: %w", s, err)
	}
	proto := "ip4"
	switch ip := net.ParseIP(h); {
	case ip == nil:
		proto = "dns"
	case ip.To4() == nil:
		proto = "ip6"
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return ma.NewMultiaddr(fmt.Sprintf("/%s/%s/tcp/%s", proto, h, port))
}

func toMultiaddrs(in []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(in))
	for _, a := range in {
		m, err := ToMultiaddr(a)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// NewHost starts a TCP-only libp2p host (a PSK rules out QUIC anyway).
func NewHost(cfg Config) (host.Host, error) {
	if cfg.PrivateKey == nil {
		return nil, errors.New("p2p: no private key")
	}
	if len(cfg.PSK) != 32 {
		return nil, errors.New("p2p: the private-network key (PSK) must be 32 bytes")
	}
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	addrs, err := toMultiaddrs(cfg.ListenAddrs)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.PrivateKey),
		libp2p.ListenAddrs(addrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.PrivateNetwork(cfg.PSK),
	}
	if len(cfg.AdvertiseAddrs) > 0 {
		adv, err := toMultiaddrs(cfg.AdvertiseAddrs)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return adv }))
	}
	rm, err := newResourceManager(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	var pb *peerBytes
	if cfg.Metrics != nil {
		bwc := metrics.NewBandwidthCounter()
		pb = newPeerBytes(bwc)
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics), libp2p.BandwidthReporter(bwc))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(append(opts, libp2p.ResourceManager(rm))...)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("p2p: host: %w", err)
	}
	if pb != nil {
		pb.h = h
		if err := cfg.Metrics.Register(pb); err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("p2p: metrics: %w", err)
		}
	}
	return h, nil
}

// streamLayer implements raft.StreamLayer over gostream.
type streamLayer struct {
	net.Listener
	h host.Host
}

// Dial opens a Raft stream to the peer named by address (a peer ID).
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	pid, err := peer.Decode(string(address))
	if err != nil {
		return nil, fmt.Errorf("p2p: raft address %q is not a peer ID: %w", address, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return gostream.Dial(ctx, s.h, pid, RaftProtocol)
}

// NewRaftTransport returns a Raft transport whose addresses are peer IDs.
func NewRaftTransport(h host.Host, log *slog.Logger) (*raft.NetworkTransport, error) {
	l, err := gostream.Listen(h, RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("p2p: raft listener: %w", err)
	}
	// Once Raft has closed the transport, its connections fail as the host
	// closes under them: what raft logs of that is the shutdown, not errors.
	var tr atomic.Pointer[raft.NetworkTransport]
	closed := func() bool { t := tr.Load(); return t != nil && t.IsShutdown() }
	t := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{Listener: l, h: h},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  logbridge.HCLog(logbridge.QuietOnceDone(log, closed), "raft-net"),
	})
	tr.Store(t)
	return t, nil
}
