package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/garret-cache/garret/replication/p2p"
)

// ProgressProtocol answers a node's Raft progress (the cluster status, and a
// follower confirming its catalog is current, ask it); the asker sends
// nothing. Served to any peer in the private network: it tells indexes and
// the Raft state, nothing of the catalog's contents.
const ProgressProtocol protocol.ID = "/garret/status/1"

// errNoHost: a catalog without Deps.Host cannot ask other nodes.
var errNoHost = errors.New("catalog: no libp2p host to reach other nodes")

// progressTimeout bounds one answer.
const progressTimeout = 2 * time.Second

// Progress is a node's Raft progress.
type Progress struct {
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Term         uint64 `json:"term"`
	State        string `json:"state"` // leader, follower, candidate, shutdown
}

// Progress is this node's Raft progress.
func (c *Catalog) Progress() Progress {
	r := c.raft
	return Progress{AppliedIndex: r.AppliedIndex(), CommitIndex: r.CommitIndex(), Term: r.CurrentTerm(),
		State: strings.ToLower(r.State().String())}
}

func (c *Catalog) serveProgress(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(progressTimeout))
	_ = json.NewEncoder(s).Encode(c.Progress())
}

// QueryProgress asks the node id for its Raft progress (this node's own
// without a stream).
func (c *Catalog) QueryProgress(ctx context.Context, id string) (Progress, error) {
	if id == c.cfg.NodeID {
		return c.Progress(), nil
	}
	if c.host == nil {
		return Progress{}, errNoHost
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return Progress{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, progressTimeout)
	defer cancel()
	var st Progress
	err = p2p.Call(ctx, c.host, pid, ProgressProtocol, nil, &st)
	return st, err
}
