package cluster

import (
	"reflect"
	"testing"

	"github.com/garret-cache/garret/replication/membership"
)

func member(id, addr string) membership.Member {
	return membership.Member{Gossip: addr, Meta: membership.Meta{PeerID: id}}
}

// TestPeerBook: the book remembers live members, offers the lost ones for
// rejoining while they are in Raft, forgets them once they are not, survives
// a restart, and calls a member "back" only after this process saw it leave.
func TestPeerBook(t *testing.T) {
	dir := t.TempDir()
	b := loadPeerBook(dir)
	inRaft := map[string]bool{"self": true, "a": true, "b": true}
	missing, back := b.update("self", []membership.Member{member("self", "s:1"), member("a", "a:1"), member("b", "b:1")}, inRaft)
	if len(missing) != 0 || len(back) != 0 {
		t.Fatalf("all alive: missing %v, back %v", missing, back)
	}
	missing, _ = b.update("self", []membership.Member{member("a", "a:1")}, inRaft)
	if !reflect.DeepEqual(missing, []string{"b:1"}) {
		t.Fatalf("b lost: missing %v", missing)
	}
	if _, back = b.update("self", []membership.Member{member("a", "a:1"), member("b", "b:2")}, inRaft); !reflect.DeepEqual(back, []string{"b"}) {
		t.Fatalf("b came back: %v", back)
	}

	// After a restart the book still knows both; meeting them is not a return.
	r := loadPeerBook(dir)
	missing, _ = r.update("self", nil, nil)
	if !reflect.DeepEqual(missing, []string{"a:1", "b:2"}) {
		t.Fatalf("after restart: missing %v", missing)
	}
	if _, back = r.update("self", []membership.Member{member("a", "a:1"), member("b", "b:2")}, inRaft); len(back) != 0 {
		t.Fatalf("first sighting after a restart counted as a return: %v", back)
	}
	// A member gone and out of Raft (it left, or was removed) is forgotten.
	missing, _ = r.update("self", []membership.Member{member("a", "a:1")}, map[string]bool{"self": true, "a": true})
	if len(missing) != 0 {
		t.Fatalf("removed member still offered: %v", missing)
	}
	if missing, _ = loadPeerBook(dir).update("self", nil, nil); !reflect.DeepEqual(missing, []string{"a:1"}) {
		t.Fatalf("saved book: %v", missing)
	}
}
