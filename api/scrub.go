package api

import (
	"errors"
	"net/http"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/serverconfig"
)

var errScrubRunning = &Error{Status: http.StatusConflict, Kind: "ScrubRunning",
	Message: "A scrub is already running on this node (the periodic one or another request); try again when it ends."}

// clusterScrub is POST /_api/v1/cluster/scrub: the answering node checks
// every chunk it stores, drops the bad ones and fetches them again from
// peers, then answers the counts. The request lasts as long as the scrub
// (its rate bounds it: {"rate": bytes per second}, default the node's
// [cluster] scrub-rate); a client that goes away stops it. Needs the
// cluster-admin claim.
func (s *Server) clusterScrub(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "scrubbing a node"); err != nil {
		return err
	}
	if s.scrubber == nil {
		return errNotFound
	}
	var req v1.ClusterScrubRequest
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	if req.Rate != 0 && req.Rate < serverconfig.MinScrubRate {
		return requestError("\"rate\" is %d bytes/s: give at least %d (1 MiB/s), or leave it out for the node's scrub-rate", req.Rate, serverconfig.MinScrubRate)
	}
	res, err := s.scrubber.ScrubNow(r.Context(), req.Rate)
	if errors.Is(err, chunkstore.ErrScrubRunning) {
		return errScrubRunning
	} else if err != nil {
		return err
	}
	return writeJSON(w, res)
}
