package p2p

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics_PeerBytes: with a registry, the host reports libp2p's series
// and the bytes exchanged with each connected peer.
func TestMetrics_PeerBytes(t *testing.T) {
	psk := bytes.Repeat([]byte{7}, 32)
	newHost := func(reg prometheus.Registerer) host.Host {
		key, _, err := LoadOrCreateIdentity(filepath.Join(t.TempDir(), "k"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewHost(Config{PrivateKey: key, PSK: psk, Metrics: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	reg := prometheus.NewRegistry()
	a, b := newHost(reg), newHost(nil)
	b.SetStreamHandler("/test/echo/1", func(s network.Stream) {
		defer s.Close()
		var v string
		_ = json.NewDecoder(s).Decode(&v)
		_ = json.NewEncoder(s).Encode(v)
	})
	a.Peerstore().AddAddrs(b.ID(), b.Addrs(), time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got string
	if err := Call(ctx, a, b.ID(), "/test/echo/1", strings.Repeat("x", 3000), &got); err != nil || len(got) != 3000 {
		t.Fatalf("call: %v", err)
	}
	want := map[string]bool{"in": false, "out": false}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "garret_p2p_peer_bytes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var p, dir string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "peer":
						p = l.GetValue()
					case "direction":
						dir = l.GetValue()
					}
				}
				if p == b.ID().String() && m.GetCounter().GetValue() >= 3000 {
					want[dir] = true
				}
			}
		}
		if want["in"] && want["out"] {
			break
		}
		time.Sleep(50 * time.Millisecond) // libp2p's meters update every second
	}
	if !want["in"] || !want["out"] {
		t.Fatalf("per-peer bytes not reported: %v", want)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 10 {
		t.Fatalf("%d series, %v", n, err)
	}
}

// TestPeerFailures: counts per peer, bounded in peers, nil-safe.
func TestPeerFailures(t *testing.T) {
	var none *PeerFailures
	none.add("x") // counts nothing, does not panic
	pf := NewPeerFailures()
	for i := range maxFailingPeers + 50 {
		pf.add(peer.ID(fmt.Sprint("p", i)))
	}
	pf.add("p0")
	pf.add("p0")
	if n := testutil.CollectAndCount(pf); n != maxFailingPeers {
		t.Fatalf("%d peers kept, want %d", n, maxFailingPeers)
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.n["p0"] < 2 {
		t.Fatalf("p0 counted %d", pf.n["p0"])
	}
}
