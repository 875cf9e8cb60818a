package p2p

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateIdentity_Stable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p2p.key")
	_, id1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	_, id2, err := LoadOrCreateIdentity(path)
	if err != nil || id1 != id2 {
		t.Fatalf("identity changed: %s -> %s (%v)", id1, id2, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode())
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(path); err == nil {
		t.Fatal("garbage key accepted")
	}
}

func TestToMultiaddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4001":         "/ip4/127.0.0.1/tcp/4001",
		"[::1]:4001":             "/ip6/::1/tcp/4001",
		"node1.example:4001":     "/dns/node1.example/tcp/4001",
		"/ip4/10.0.0.1/tcp/9000": "/ip4/10.0.0.1/tcp/9000",
	} {
		m, err := ToMultiaddr(in)
		if err != nil || m.String() != want {
			t.Errorf("%s: %v %v", in, m, err)
		}
	}
	if _, err := ToMultiaddr("nonsense"); err == nil {
		t.Error("nonsense accepted")
	}
}

// TestNewHost_Advertise: with p2p-advertise the host announces only that
// address (what gossip then carries to the other nodes).
func TestNewHost_Advertise(t *testing.T) {
	key, _, err := LoadOrCreateIdentity(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(Config{PrivateKey: key, PSK: bytes.Repeat([]byte{1}, 32), AdvertiseAddrs: []string{"203.0.113.7:4001"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := h.Addrs(); len(got) != 1 || got[0].String() != "/ip4/203.0.113.7/tcp/4001" {
		t.Errorf("advertised %v", got)
	}
}
