package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixcompress"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// keptFile stores an upload's bytes as they were sent, alongside the NAR's
// own ingest: the request body is teed into a second chunk-store ingest.
type keptFile struct {
	tee  io.Reader
	src  io.Reader // the body, for what the decoder left unread
	pw   *io.PipeWriter
	done chan keptResult
}

type keptResult struct {
	res *chunkstore.IngestResult
	err error
}

// keepFile starts the second ingest; every byte read through kf.tee reaches it.
func (s *Server) keepFile(ctx context.Context, body io.Reader) *keptFile {
	pr, pw := io.Pipe()
	kf := &keptFile{tee: io.TeeReader(body, pw), src: body, pw: pw, done: make(chan keptResult, 1)}
	go func() {
		res, err := s.store.Ingest(ctx, pr)
		_ = pr.CloseWithError(err) // unblock the tee if the ingest failed
		kf.done <- keptResult{res, err}
	}()
	return kf
}

// finish sends what the decoder did not read, ends the file, and returns
// what its ingest produced (its manifest is not stored yet).
func (kf *keptFile) finish() (*chunkstore.IngestResult, error) {
	if _, err := io.Copy(kf.pw, kf.src); err != nil {
		return nil, classifyBodyError(&clientError{err})
	}
	_ = kf.pw.Close()
	r := <-kf.done
	kf.done = nil
	if r.err != nil {
		return nil, classifyBodyError(r.err)
	}
	return r.res, nil
}

// abort stops the second ingest if finish was not reached; its chunks are
// orphans the sweep removes.
func (kf *keptFile) abort() {
	if kf.done == nil {
		return
	}
	_ = kf.pw.CloseWithError(errors.New("upload abandoned"))
	<-kf.done
}

// getNarFile answers GET and HEAD of nar/<filehash>.nar[.ext], Nix's own
// NAR URLs: a NAR staged by this node (Nix HEADs it before uploading; needs
// push), else the committed object whose uploader used that URL, served in
// the compression it was uploaded in (needs pull). 404 when neither, or when
// the NAR cannot be served in that compression (uploaded under /upload/),
// so that Nix uploads it.
func (s *Server) getNarFile(w http.ResponseWriter, r *http.Request, name nixid.CacheName, file string) error {
	if !narFileRE.MatchString(file) {
		return errNotFound
	}
	cache, err := s.authorize(r, name, func(p token.Permission) bool { return p.Pull || p.Push })
	if err != nil {
		return err
	}
	perm := callerOf(r).permission(name)
	if perm.Push {
		if st, ok := s.staging.get(name, "nar/"+file); ok {
			return s.serveNAR(w, r, st.manifest, mimeNar)
		}
	}
	if !perm.Pull && !cache.IsPublic {
		return errNoSuchObject
	}
	obj, err := s.catalog.ObjectByNarURL(name, "nar/"+file)
	if errors.Is(err, catalog.ErrNoSuchNarURL) {
		return errNoSuchObject
	} else if err != nil {
		return err
	}
	setVisibility(w, cache)
	s.recordDownload(r, obj)
	up := obj.Upload
	switch {
	case !up.File.IsZero():
		return s.serveRaw(w, r, up.File, up.FileSize, mimeNar)
	case up.Compression == string(nixcompress.Zstd):
		return s.serveNAR(w, r, obj.Manifest, mimeNar)
	case up.Compression == string(nixcompress.None):
		return s.serveRaw(w, r, obj.Manifest, obj.NarSize, mimeNar)
	}
	return errNoSuchObject
}

// serveRaw streams the decompressed bytes of a manifest (a file kept as
// uploaded, an auxiliary file, or a NAR served uncompressed), with HEAD and
// single-range support. size is the raw size.
func (s *Server) serveRaw(w http.ResponseWriter, r *http.Request, id chunkstore.ManifestID, size int64, contentType string) error {
	nar, err := s.openNAR(r.Context(), id)
	if err != nil {
		return fmt.Errorf("%w (%v)", errIncompleteNar, err)
	}
	off, length, partial, err := parseRange(r.Header.Get("Range"), size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		return err
	}
	h := w.Header()
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || length == 0 {
		return nil
	}
	rc := nar.RawReader(r.Context())
	defer rc.Close()
	_, err = io.CopyN(io.Discard, rc, off)
	if err == nil {
		_, err = io.CopyN(w, rc, length)
	}
	if err != nil {
		// Headers are out: abort rather than end a 200 short.
		s.log.Warn("stream aborted", "manifest", id, "request_id", requestID(r), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
