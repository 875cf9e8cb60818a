package node

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/garret-cache/garret/replication/p2p"
)

// StatusProtocol answers a node's Raft progress to the node that builds the
// cluster status; the asker sends nothing.
const StatusProtocol protocol.ID = "/garret/status/1"

// statusTimeout bounds how long the cluster status waits for every node.
const statusTimeout = 2 * time.Second

// raftStatus is the reply of StatusProtocol.
type raftStatus struct {
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Term         uint64 `json:"term"`
	State        string `json:"state"` // leader, follower, candidate, shutdown
}

func (n *Node) localStatus() raftStatus {
	r := n.catalog.Raft()
	return raftStatus{AppliedIndex: r.AppliedIndex(), CommitIndex: r.CommitIndex(), Term: r.CurrentTerm(),
		State: strings.ToLower(r.State().String())}
}

func (n *Node) serveStatus(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(statusTimeout))
	_ = json.NewEncoder(s).Encode(n.localStatus())
}

// queryStatus asks one node for its Raft progress (itself without a stream).
func (n *Node) queryStatus(ctx context.Context, id string) (raftStatus, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return raftStatus{}, err
	}
	if pid == n.host.ID() {
		return n.localStatus(), nil
	}
	var st raftStatus
	err = p2p.Call(ctx, n.host, pid, StatusProtocol, nil, &st)
	return st, err
}

// queryStatuses asks every node at once; a node that does not answer within
// statusTimeout is missing from the result.
func (n *Node) queryStatuses(ctx context.Context, ids []string) map[string]raftStatus {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]raftStatus{}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.queryStatus(ctx, id)
			if err != nil {
				n.log.Debug("no Raft status from a node", "peer_id", id, "err", err)
				return
			}
			mu.Lock()
			out[id] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
