package api

import (
	"net/http"

	"github.com/garret-cache/garret/replication/catalog"
)

// recordDownload tells retention that obj's NAR was downloaded (a GET, not
// a HEAD): Attic's last_accessed_at, which only NAR downloads bump.
func (s *Server) recordDownload(r *http.Request, obj catalog.Object) {
	if s.downloads != nil && r.Method == http.MethodGet {
		s.downloads.Record(obj.Cache, obj.StorePathHash, obj.LastUsed())
	}
}

// clusterGC is POST /_api/v1/cluster/gc: the answering node runs one
// garbage collection pass now (retention too, if it is the leader) and
// answers what it freed; the request lasts as long as the pass. A pass
// that failed, or that skipped the sweep because the catalog could not be
// confirmed current, is a 503 naming why. Needs the cluster-admin claim.
func (s *Server) clusterGC(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "running garbage collection"); err != nil {
		return err
	}
	if s.collector == nil {
		return errNotFound
	}
	res, err := s.collector.CollectNow(r.Context())
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Kind: "GarbageCollectionFailed",
			Message: "Garbage collection did not complete: " + err.Error()}
	}
	return writeJSON(w, res)
}
