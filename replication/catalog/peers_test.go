package catalog

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/garret-cache/garret/replication/p2p"
)

// TestCatalog_ServesOnlyRaftServers: a process that holds the cluster secret
// (so it can connect) but is not in the Raft configuration is refused on
// every protocol that changes the cluster, and its forwarded write is not
// applied.
func TestCatalog_ServesOnlyRaftServers(t *testing.T) {
	leader := startNode(t, t.TempDir(), true)
	leader.cat.serveOn(leader.host)
	waitLeader(t, leader.cat)
	outsider, outsiderID := newHost(t, t.TempDir())
	defer outsider.Close()
	outsider.Peerstore().AddAddrs(leader.id, leader.host.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for proto, req := range map[protocol.ID]any{
		ForwardProtocol: cmdOf(&setClusterID{ClusterID: "taken-over"}),
		RemoveProtocol:  removeRequest{ID: leader.id.String()},
		LeaveProtocol:   leaveRequest{ID: outsiderID.String()},
	} {
		var reply map[string]any
		if err := p2p.Call(ctx, outsider, leader.id, proto, req, &reply); err == nil {
			t.Errorf("%s served a peer outside the Raft configuration: %v", proto, reply)
		}
	}
	if id := leader.cat.ClusterID(); id == "taken-over" {
		t.Fatal("a write forwarded by an outsider was applied")
	}
}
