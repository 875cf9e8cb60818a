package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/garret-cache/garret/internal/diskspace"
)

// DiskFloor says whether the node has room for more pushed data: nil, a
// *diskspace.LowError below the floor, or the error of measuring.
type DiskFloor interface{ Check() error }

var _ DiskFloor = (*diskspace.Floor)(nil)

// errInsufficientStorage is the answer to a push while the data dir's
// filesystem is below [uploads] min-free-space.
var errInsufficientStorage = &Error{Status: http.StatusInsufficientStorage, Kind: "InsufficientStorage",
	Message: "This node is low on disk space and refuses new uploads until space is freed; downloads and cache management still work."}

// withDiskFloor answers 507, before any byte of the body is read, to a push
// (every PUT but nix-cache-info's, which stores nothing: NARs, narinfos,
// listings, logs, realisations, debug info, upload-path, on /CACHE and
// /upload/CACHE alike) while the disk is below its floor. The space left is
// the catalog's, so cache management, token revocation and deletes keep
// working, and reads never needed any. Anonymous requests pass: their
// handler refuses them (no token can push) without the disk's state.
func (s *Server) withDiskFloor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.floor != nil && r.Method == http.MethodPut && !strings.HasSuffix(r.URL.Path, "/nix-cache-info") &&
			callerOf(r).claims != nil {
			var low *diskspace.LowError
			switch err := s.floor.Check(); {
			case errors.As(err, &low):
				writeError(w, r, s.log, &Error{Status: errInsufficientStorage.Status, Kind: errInsufficientStorage.Kind,
					Message: errInsufficientStorage.Message, cause: err})
				return
			case err != nil: // cannot tell: the write itself will say
				s.log.Warn("could not measure free disk space", "err", err)
			}
		}
		next.ServeHTTP(w, r)
	})
}
