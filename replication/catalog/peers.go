package catalog

import (
	"github.com/libp2p/go-libp2p/core/network"
)

// fromServer reports whether s was opened by a server in the Raft
// configuration. Only those may forward writes, ask for removals or leave:
// holding the cluster secret lets a process connect, not change the catalog
// (a node that gossip shows but Raft has not added yet knows no leader to
// forward to). A refused stream is logged and reset.
func (c *Catalog) fromServer(s network.Stream) bool {
	remote := s.Conn().RemotePeer().String()
	if c.IsServer(remote) {
		return true
	}
	c.log.Warn("refused a stream from a peer outside the Raft configuration", "protocol", s.Protocol(), "peer", remote)
	_ = s.Reset()
	return false
}

// IsServer reports whether id is a server (voter or not) in the Raft
// configuration as this node knows it.
func (c *Catalog) IsServer(id string) bool {
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if string(srv.ID) == id {
				return true
			}
		}
	}
	return false
}
