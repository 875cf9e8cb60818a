package membership

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/garret-cache/garret/internal/eventually"
)

func start(t *testing.T, name string, key []byte) *Membership {
	t.Helper()
	m, err := New(Config{NodeName: name, SecretKey: key, Meta: Meta{PeerID: "id-" + name, Region: "eu", Voter: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Leave(0) })
	return m
}

func TestMembership_JoinWithKeyAndMeta(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, b := start(t, "a", key), start(t, "b", key)
	if _, err := b.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Members()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a sees %d members", len(a.Members()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, m := range a.Members() {
		if m.Meta.PeerID != "id-"+m.Name || m.Meta.Region != "eu" || !m.Meta.Voter {
			t.Fatalf("metadata of %s: %+v", m.Name, m.Meta)
		}
	}
	intruder := start(t, "x", bytes.Repeat([]byte{8}, 32))
	if _, err := intruder.Join([]string{a.GossipAddr()}); err == nil {
		t.Fatal("a member with another key joined")
	}
	if len(a.Members()) != 2 {
		t.Fatalf("the intruder became a member: %d", len(a.Members()))
	}
}

// TestMembership_AlwaysEncrypted: gossip without a 32-byte key does not
// start, and a plain memberlist (no key) cannot join a member.
func TestMembership_AlwaysEncrypted(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 16)} {
		if m, err := New(Config{NodeName: "plain", SecretKey: key}); !errors.Is(err, ErrNoKey) {
			if m != nil {
				_ = m.Leave(0)
			}
			t.Fatalf("gossip with a %d-byte key: %v; want %v", len(key), err, ErrNoKey)
		}
	}
	a := start(t, "a", bytes.Repeat([]byte{7}, 32))
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "plain", "127.0.0.1", 0
	mc.Logger = log.New(io.Discard, "", 0)
	plain, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	if _, err := plain.Join([]string{a.GossipAddr()}); err == nil {
		t.Fatal("a memberlist without the key joined")
	}
	if len(a.Members()) != 1 {
		t.Fatalf("a sees %d members; the keyless one got in", len(a.Members()))
	}
}

// TestMembership_Departed: a member that leaves gracefully is remembered as
// left, one that stops answering as dead (LAN timings: seconds), each with
// the metadata it gossiped; a member that comes back is forgotten.
func TestMembership_Departed(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, b, c := start(t, "a", key), start(t, "b", key), start(t, "c", key)
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, "three members", func() bool { return len(a.Members()) == 3 })
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "b to have left", func() bool {
		d := a.Departed()
		return len(d) == 1 && d[0].Name == "b" && d[0].Left && d[0].Meta.PeerID == "id-b"
	})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 30*time.Second, "c to be declared dead", func() bool {
		d := a.Departed()
		return len(d) == 2 && d[0].Name == "c" && !d[0].Left && d[0].Meta.Region == "eu" && d[1].Name == "b"
	})
	a.forget("b")
	a.forget("c")
	if d := a.Departed(); len(d) != 0 {
		t.Fatalf("forgotten members still listed: %+v", d)
	}
	for i := range maxDeparted + 5 {
		a.depart(Departed{Name: fmt.Sprint(i)})
	}
	if d := a.Departed(); len(d) != maxDeparted || d[0].Name != fmt.Sprint(maxDeparted+4) {
		t.Fatalf("%d departed kept, newest %q", len(d), d[0].Name)
	}
}
