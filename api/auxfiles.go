package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/garret-cache/garret/replication/catalog"
)

// maxAuxFileSize caps build logs, listings and realisations.
const maxAuxFileSize = 256 << 20

// getAuxFile serves prefix + the last path segment (log/<drv>, realisations/<id>).
func (s *Server) getAuxFile(prefix string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return s.serveAuxFile(w, r, prefix+lastSegment(r))
	}
}

// putAuxFile stores prefix + the last path segment.
func (s *Server) putAuxFile(prefix string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return s.storeAuxFile(w, r, prefix+lastSegment(r))
	}
}

func lastSegment(r *http.Request) string {
	if v := r.PathValue("drv"); v != "" {
		return v
	}
	return r.PathValue("id")
}

// storeAuxFile keeps the files `nix copy` uploads besides NARs (build logs,
// .ls listings, realisations) as opaque bytes with their content headers.
func (s *Server) storeAuxFile(w http.ResponseWriter, r *http.Request, file string) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	if _, err := s.authorize(r, name, needPush); err != nil {
		return err
	}
	res, err := s.store.Ingest(r.Context(), clientReader{http.MaxBytesReader(w, r.Body, maxAuxFileSize)})
	if err != nil {
		return classifyBodyError(err)
	}
	manifest, err := s.store.PutManifest(res.Manifest)
	if err != nil {
		return err
	}
	f := catalog.File{
		Cache: name, Name: file, Manifest: manifest, Size: res.RawSize,
		ContentType: r.Header.Get("Content-Type"), ContentEncoding: r.Header.Get("Content-Encoding"),
		CreatedAt: time.Now().UTC(),
	}
	if err := catalogError(s.catalog.PutFile(r.Context(), f)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) serveAuxFile(w http.ResponseWriter, r *http.Request, file string) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	if _, err := s.authorize(r, name, needPull); err != nil {
		return err
	}
	f, err := s.catalog.File(name, file)
	if errors.Is(err, catalog.ErrNoSuchFile) {
		return errNotFound
	} else if err != nil {
		return err
	}
	nar, err := s.openNAR(r.Context(), f.Manifest)
	if err != nil {
		return errors.Join(errIncompleteNar, err)
	}
	if f.ContentType != "" {
		w.Header().Set("Content-Type", f.ContentType)
	}
	if f.ContentEncoding != "" {
		w.Header().Set("Content-Encoding", f.ContentEncoding)
	}
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	if r.Method == http.MethodHead {
		return nil
	}
	rc := nar.RawReader(r.Context())
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("file stream aborted", "file", file, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
