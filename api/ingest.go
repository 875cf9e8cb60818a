package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nar"
	"github.com/garret-cache/garret/internal/nixid"
)

// ingested is a NAR that has been streamed into the chunk store and checked
// for structure; its hash and size still have to match what the client claims.
type ingested struct {
	res     *chunkstore.IngestResult
	narHash nixid.NarHash
	narSize int64
}

// clientError marks an error that came from the request body (a read error, a
// corrupt compressed stream or a malformed NAR) rather than from the server.
type clientError struct{ err error }

func (e *clientError) Error() string { return e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// clientReader tags every error of the body pipeline as the client's.
type clientReader struct{ r io.Reader }

func (c clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientError{err}
	}
	return n, err
}

// ingestNAR streams an uncompressed NAR from body into the chunk store in one
// pass: SHA-256 for NarHash and the structure check run on the same bytes the
// chunker reads. Nothing becomes visible here: chunks without a committed
// manifest are orphans that the sweep removes.
func (s *Server) ingestNAR(ctx context.Context, body io.Reader) (*ingested, error) {
	h := sha256.New()
	v := nar.NewValidator()
	src := clientReader{io.TeeReader(body, io.MultiWriter(h, v))}
	res, err := s.store.Ingest(ctx, src)
	if err != nil {
		return nil, classifyBodyError(err)
	}
	if err := v.Close(); err != nil {
		return nil, requestError("malformed NAR: %v", err)
	}
	out := &ingested{res: res, narSize: v.Size()}
	copy(out.narHash[:], h.Sum(nil))
	return out, nil
}

// classifyBodyError turns pipeline errors into client-facing 400s, leaving
// server-side failures (storage) as internal errors.
func classifyBodyError(err error) error {
	var ce *clientError
	if e := decoderMemoryError(err); e != nil {
		return e
	}
	switch {
	case errors.Is(err, nar.ErrFormat):
		return requestError("malformed NAR: %v", err)
	case errors.As(err, &ce):
		if isTooLarge(err) {
			return withMessage(errTooLarge, "Request body too large: %v", err)
		}
		return requestError("reading the request body: %v", ce.err)
	case errors.Is(err, context.Canceled):
		return requestError("upload cancelled: %v", err)
	}
	return fmt.Errorf("ingest: %w", err)
}

// checkClaims compares an ingested NAR with the hash and size a client claimed.
func (in *ingested) checkClaims(hash nixid.NarHash, size int64) error {
	if in.narSize != size || in.narHash != hash {
		return requestError("Bad NAR Hash or Size: the client claimed %s (%d bytes), the upload was %s (%d bytes)",
			hash, size, in.narHash, in.narSize)
	}
	return nil
}
