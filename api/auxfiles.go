package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/garret-cache/garret/internal/nixcompress"
	"github.com/garret-cache/garret/replication/catalog"
)

// maxAuxFileSize caps build logs, listings, realisations and debug-info
// entries, after decoding any Content-Encoding.
const maxAuxFileSize = 256 << 20

// auxSegmentRE bounds the names of auxiliary files Nix uploads: derivation
// file names (log/), realisation ids ("sha256:<hash>!out.doi"), build-trace
// entries (build-trace-v2/<drv name>/<output>.doi) and build ids
// (debuginfo/). Nothing with a slash, nothing that is "." or "..".
var auxSegmentRE = regexp.MustCompile(`^[A-Za-z0-9+\-._?=:!]{1,255}$`)

// auxFile names the file a route stands for: prefix + its path values.
func auxFile(prefix string, r *http.Request, keys ...string) (string, error) {
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := r.PathValue(k)
		if !auxSegmentRE.MatchString(v) || v == "." || v == ".." {
			return "", requestError("invalid file name %q under %s", v, prefix)
		}
		parts[i] = v
	}
	return prefix + strings.Join(parts, "/"), nil
}

// getAuxFile serves prefix + the route's path values (log/<drv>, realisations/<id>, …).
func (s *Server) getAuxFile(prefix string, keys ...string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		file, err := auxFile(prefix, r, keys...)
		if err != nil {
			return err
		}
		return s.serveAuxFile(w, r, file)
	}
}

// putAuxFile stores prefix + the route's path values.
func (s *Server) putAuxFile(prefix string, keys ...string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		file, err := auxFile(prefix, r, keys...)
		if err != nil {
			return err
		}
		return s.storeAuxFile(w, r, file)
	}
}

// decodedBody is the request body with its Content-Encoding removed: Nix
// 2.32+ sends narinfos, listings and logs compressed when
// narinfo-compression, ls-compression or log-compression is set, naming the
// compression (xz, zstd, br, gzip, …) in Content-Encoding. The decoded size
// is capped at limit; past it reads fail with an error isTooLarge knows.
func (s *Server) decodedBody(w http.ResponseWriter, r *http.Request, limit int64) (io.ReadCloser, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	body := http.MaxBytesReader(w, r.Body, limit)
	switch enc {
	case "", "identity":
		return body, nil
	case "zst":
		enc = string(nixcompress.Zstd)
	case "x-gzip":
		enc = string(nixcompress.Gzip)
	}
	kind, err := nixcompress.ParseKind(enc)
	if err != nil || kind == nixcompress.None {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Kind: "RequestError",
			Message: fmt.Sprintf("General request error: Content-Encoding %q is not supported: %v", enc, err)}
	}
	dec, err := nixcompress.NewBudgetReader(r.Context(), kind, body, s.decoders)
	if err != nil {
		if e := decoderMemoryError(err); e != nil {
			return nil, e
		}
		return nil, requestError("Content-Encoding %s: %v", enc, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{&capped{r: dec, left: limit, limit: limit}, dec}, nil
}

// capped fails a decoded stream that grows past its limit (a decompression
// bomb), with the error http.MaxBytesReader uses.
type capped struct {
	r           io.Reader
	left, limit int64
}

func (c *capped) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1] // one byte past the limit tells a full stream from a bigger one
	}
	n, err := c.r.Read(p)
	if c.left -= int64(n); c.left < 0 {
		return n + int(c.left), &http.MaxBytesError{Limit: c.limit}
	}
	return n, err
}

// storeAuxFile keeps the files `nix copy` uploads besides NARs (build logs,
// .ls listings, realisations, build traces, debug-info entries) decoded, as
// opaque bytes with their Content-Type.
func (s *Server) storeAuxFile(w http.ResponseWriter, r *http.Request, file string) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	if _, err := s.authorize(r, name, needPush); err != nil {
		return err
	}
	body, err := s.decodedBody(w, r, maxAuxFileSize)
	if err != nil {
		return err
	}
	defer body.Close()
	res, err := s.store.Ingest(r.Context(), clientReader{body})
	if err != nil {
		return classifyBodyError(err)
	}
	manifest, err := s.store.PutManifest(res.Manifest)
	if err != nil {
		return err
	}
	f := catalog.File{
		Cache: name, Name: file, Manifest: manifest, Size: res.RawSize,
		ContentType: r.Header.Get("Content-Type"), CreatedAt: time.Now().UTC(),
	}
	if err := s.ensureCopies(r.Context(), manifest); err != nil {
		return err
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
	if f.ContentEncoding != "" { // stored encoded by an older Garret
		w.Header().Set("Content-Encoding", f.ContentEncoding)
	}
	return s.serveRaw(w, r, f.Manifest, f.Size, f.ContentType)
}
