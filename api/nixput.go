package api

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixcompress"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// narFileRE matches the NAR file names Nix uploads: nar/<filehash>.nar[.ext].
var narFileRE = regexp.MustCompile(`^[0-9a-z]{32,64}\.nar(\.[a-z0-9]{1,8})?$`)

// putNixCacheInfo accepts Nix's PUT of nix-cache-info (sent whenever its GET
// was not a 200) as a no-op: the cache's own settings win, and a PUT never
// creates a cache.
func (s *Server) putNixCacheInfo(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	if _, err := s.authorize(r, name, needPush); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putCacheFile is PUT /{cache}/<hash>.narinfo and /{cache}/<hash>.ls.
func (s *Server) putCacheFile(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	switch {
	case strings.HasSuffix(file, ".narinfo"):
		return s.putNarInfo(w, r, strings.TrimSuffix(file, ".narinfo"))
	case strings.HasSuffix(file, ".ls"):
		if _, err := nixid.ParseStorePathHash(strings.TrimSuffix(file, ".ls")); err != nil {
			return requestError("%v", err)
		}
		return s.storeAuxFile(w, r, file)
	}
	return errNotFound
}

// putNar stages a NAR uploaded by `nix copy --to`: decompress as it streams,
// check structure, hash and chunk it; the narinfo that follows commits it.
// Uploaded to the substituter URL in a compression other than zstd or none,
// the file itself is kept too, so a client that remembers its own narinfo
// can download it at its own URL (see catalog.UploadedNAR).
func (s *Server) putNar(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	file := r.PathValue("file")
	if !narFileRE.MatchString(file) {
		return requestError("invalid NAR file name %q: want nar/<hash>.nar[.xz|.zst|.bz2|.br|.lz4|.lzip]", file)
	}
	var hint nixcompress.Kind // a plain .nar may be none, gzip, lzma or compress: sniffed
	if _, ext, ok := strings.Cut(file, ".nar."); ok {
		if hint, err = nixcompress.ParseKind(extKind(ext)); err != nil {
			return requestError("%v", err)
		}
	}
	if _, err := s.authorize(r, name, needPush); err != nil {
		return err
	}
	release, err := s.staging.reserve(name)
	if err != nil {
		w.Header().Set("Retry-After", "60")
		return err
	}
	defer release()
	br := bufio.NewReaderSize(r.Body, 64<<10)
	prefix, err := br.Peek(16)
	if err != nil && err != io.EOF {
		return classifyBodyError(&clientError{err})
	}
	kind, err := nixcompress.Detect(prefix, hint)
	if err != nil {
		return requestError("%v", err)
	}
	var body io.Reader = br
	var kept *keptFile
	if !isUpload(r) && kind != nixcompress.Zstd && kind != nixcompress.None {
		kept = s.keepFile(r.Context(), br)
		defer kept.abort()
		body = kept.tee
	}
	dec, err := nixcompress.NewBudgetReader(r.Context(), kind, body, s.decoders)
	if err != nil {
		if e := decoderMemoryError(err); e != nil {
			return e
		}
		return requestError("%v", err)
	}
	defer dec.Close()
	in, err := s.ingestNAR(r.Context(), dec)
	if err != nil {
		return err
	}
	st := staged{narHash: in.narHash, narSize: in.narSize, storedSize: in.res.StoredSize, compression: kind, at: time.Now()}
	if kept != nil {
		res, err := kept.finish()
		if err != nil {
			return err
		}
		if st.file, err = s.store.PutManifest(res.Manifest); err != nil {
			return err
		}
		st.fileSize = res.RawSize
	}
	if st.manifest, err = s.store.PutManifest(in.res.Manifest); err != nil {
		return err
	}
	s.staging.put(name, "nar/"+file, st)
	if s.copies != nil {
		// Copies start now, while Nix sends its other NARs; the narinfo
		// PUT then waits for them (Ensure joins this attempt).
		s.copies.Start(st.manifest)
	}
	s.metrics.ingested(in)
	w.WriteHeader(http.StatusOK)
	return nil
}

// extKind maps Nix's NAR file extensions to compression names (br, lz4,
// lzip and xz are the names themselves).
func extKind(ext string) string {
	switch ext {
	case "zst":
		return "zstd"
	case "bz2":
		return "bzip2"
	case "gz":
		return "gzip"
	}
	return ext
}

// putNarInfo commits a staged NAR: the narinfo's NarHash and NarSize must be
// exactly what was uploaded, and its Compression what the bytes were.
func (s *Server) putNarInfo(w http.ResponseWriter, r *http.Request, hashPart string) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	h, err := nixid.ParseStorePathHash(hashPart)
	if err != nil {
		return requestError("%v", err)
	}
	cache, err := s.authorize(r, name, needPush)
	if err != nil {
		return err
	}
	if err := catalogError(s.catalog.AwaitWritable(r.Context())); err != nil {
		return err // before the body: Nix's retry of a PUT would send none
	}
	body, err := s.decodedBody(w, r, s.cfg.MaxNarInfoSize)
	if err != nil {
		return err
	}
	defer body.Close()
	ni, err := narinfo.Parse(body)
	if err != nil {
		if isTooLarge(err) {
			return withMessage(errTooLarge, "narinfo too large (limit %d bytes)", s.cfg.MaxNarInfoSize)
		}
		if e := decoderMemoryError(err); e != nil {
			return e
		}
		return requestError("invalid narinfo: %v", err)
	}
	dir, ph, _, _ := nixid.SplitStorePath(ni.StorePath)
	if ph != h {
		return requestError("narinfo StorePath %s does not match the URL's hash %s", ni.StorePath, h)
	}
	if dir != cache.StoreDir {
		return requestError("narinfo StorePath %s is not in this cache's store %s", ni.StorePath, cache.StoreDir)
	}
	if err := ni.Validate(cache.StoreDir); err != nil {
		return requestError("invalid narinfo: %v", err)
	}
	kind, err := nixcompress.ParseKind(ni.Compression)
	if err != nil {
		return requestError("%v", err)
	}
	obj := catalog.Object{
		Cache: name, StorePathHash: h, StorePath: ni.StorePath, References: ni.References,
		Deriver: ni.Deriver, System: ni.System, CA: ni.CA, Sigs: ni.Sigs,
		NarHash: ni.NarHash, NarSize: int64(ni.NarSize),
		CreatedAt: time.Now().UTC(), CreatedBy: callerOf(r).subject(),
	}
	url := strings.TrimPrefix(ni.URL, "./")
	st, ok := s.staging.get(name, url)
	if !ok {
		st, ok = s.stagedOnPeer(r.Context(), name, url)
	}
	if ok {
		if st.compression != kind {
			s.staging.remove(name, url)
			return requestError("narinfo says Compression: %s but %s was uploaded as %s", ni.Compression, url, st.compression)
		}
		if st.narHash != ni.NarHash || st.narSize != int64(ni.NarSize) {
			s.staging.remove(name, url)
			return requestError("Bad NAR Hash or Size: the narinfo claims %s (%d bytes), %s was %s (%d bytes)",
				ni.NarHash, ni.NarSize, url, st.narHash, st.narSize)
		}
		obj.Manifest, obj.FileSize = st.manifest, st.storedSize
		obj.Upload = &catalog.UploadedNAR{URL: url, Compression: string(kind), File: st.file, FileSize: st.fileSize}
		if err := s.ensureCopies(r.Context(), st.manifest); err != nil {
			return err // the NAR stays staged: Nix retries a 503
		}
		s.staging.remove(name, url)
	} else {
		// No NAR was uploaded: this narinfo is re-sent for a path already
		// here, or Nix found its NAR file here (HEAD) under another path
		// with the same contents. Either way the NAR must be the same.
		src, err := s.sameNarObject(name, h, url, ni.NarHash, int64(ni.NarSize))
		if err != nil {
			return err
		}
		obj.Manifest, obj.FileSize, obj.Upload = src.Manifest, src.FileSize, src.Upload
		if src.Upload == nil || src.Upload.URL != url {
			obj.Upload = &catalog.UploadedNAR{URL: url, Compression: string(kind)} // servable only if zstd or none
		}
	}
	if err := catalogError(s.catalog.PutObject(r.Context(), obj)); err != nil {
		return err
	}
	s.metrics.pushed("nix", ok) // ok: its NAR was uploaded (staged here or on a peer)
	w.WriteHeader(http.StatusOK)
	return nil
}

// sameNarObject finds a committed object with the NAR a narinfo describes:
// the path itself, or the object whose uploader used the same NAR URL.
func (s *Server) sameNarObject(name nixid.CacheName, h nixid.StorePathHash, url string, narHash nixid.NarHash, narSize int64) (catalog.Object, error) {
	same := func(o catalog.Object) bool { return o.NarHash == narHash && o.NarSize == narSize }
	o, err := s.catalog.Object(name, h)
	if err == nil && same(o) {
		return o, nil
	} else if err != nil && !errors.Is(err, catalog.ErrNoSuchObject) {
		return o, err
	}
	o, err = s.catalog.ObjectByNarURL(name, url)
	if err == nil && same(o) {
		return o, nil
	} else if err != nil && !errors.Is(err, catalog.ErrNoSuchNarURL) {
		return o, err
	}
	return o, requestError("the NAR %s was not uploaded before this narinfo (or its upload expired); upload it first", url)
}
