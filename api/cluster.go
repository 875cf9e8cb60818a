package api

import (
	"errors"
	"net"
	"net/http"
	"strconv"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/cluster"
)

var errNoSuchNode = &Error{Status: http.StatusNotFound, Kind: "NoSuchNode", Message: "The requested node does not exist."}

// clusterError maps the controller's refusals: ErrNoSuchNode is a 404,
// ErrRefused a 400, both with the controller's message (it tells the admin
// what to do instead); anything else as catalogError does.
func clusterError(err error) error {
	var ce *cluster.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce) && errors.Is(ce.Kind, cluster.ErrNoSuchNode):
		return withMessage(errNoSuchNode, "%s", ce.Message)
	case errors.As(err, &ce):
		return requestError("%s", ce.Message)
	}
	return catalogError(err)
}

// maxJoinAddrs caps the addresses of one join request.
const maxJoinAddrs = 64

// clusterJoin is POST /_api/v1/cluster/join: this node gossip-joins the
// given addresses; needs the cluster-admin claim.
func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "joining a cluster"); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNotFound
	}
	var req v1.ClusterJoinRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Addrs) == 0 || len(req.Addrs) > maxJoinAddrs {
		return requestError("give 1 to %d gossip addresses (host:port) of existing members in \"addrs\"", maxJoinAddrs)
	}
	for _, a := range req.Addrs {
		host, port, err := net.SplitHostPort(a)
		if p, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || host == "" || p == 0 {
			return requestError("%q is not a gossip address (host:port, like eu-1.example.net:7946)", a)
		}
	}
	n, err := s.cluster.JoinCluster(req.Addrs)
	if err != nil {
		return clusterError(err)
	}
	return writeJSON(w, v1.ClusterJoinResponse{Contacted: n})
}

// clusterLeave is POST /_api/v1/cluster/leave: this node leaves the cluster
// gracefully, then its garretd exits; answered before it goes. Needs the
// cluster-admin claim.
func (s *Server) clusterLeave(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "leaving the cluster"); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNotFound
	}
	res, err := s.cluster.LeaveCluster()
	if err != nil {
		return clusterError(err)
	}
	return writeJSON(w, res)
}

// clusterRemove is POST /_api/v1/cluster/remove: the leader removes a node
// (one that will not come back) from the Raft configuration. Needs the
// cluster-admin claim.
func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "removing a node"); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNotFound
	}
	var req v1.ClusterRemoveRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Node == "" || len(req.Node) > 256 {
		return requestError("give the node's name or peer id in \"node\"")
	}
	res, err := s.cluster.RemoveNode(r.Context(), req.Node)
	if err != nil {
		return clusterError(err)
	}
	return writeJSON(w, res)
}
