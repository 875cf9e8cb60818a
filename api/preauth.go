package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"

	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// Authorization comes before work. A route whose cache is in its URL checks
// the caller before it touches the body. Three Attic routes name their cache
// inside the body (upload-path's upload info, get-missing-paths and
// delete-paths): for those the token must first grant the permission on some
// cache (else 401/403 before any byte is read), then the "cache" member that
// Attic's and Garret's clients write first is read from the body's first
// bytes and authorized before the rest. A body that names its cache later is
// read whole before it can be authorized; such bodies together hold at most
// Config.MaxUnauthorizedBytes per node, past which they are refused (503).

// DefaultMaxUnauthorizedBytes bounds the bytes held node-wide by request
// bodies that have been read but not yet authorized.
const DefaultMaxUnauthorizedBytes = 16 << 20

// cacheHeadSize is how much of a body is read to find its leading "cache".
const cacheHeadSize = 128

// leadingCacheRE matches a JSON object whose first member is "cache".
var leadingCacheRE = regexp.MustCompile(`^\s*\{\s*"cache"\s*:\s*"([A-Za-z0-9\-_+.]{1,64})"`)

// byteBudget is a node-wide count of bytes that requests may hold.
type byteBudget struct {
	mu        sync.Mutex
	used, max int64
}

func (b *byteBudget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// errPreauthBusy is the 503 when unauthorized bodies already hold the budget.
var errPreauthBusy = &Error{Status: http.StatusServiceUnavailable, Kind: "ServiceUnavailable",
	Message: "Too many requests are waiting to be authorized; retry shortly, or send the \"cache\" member first."}

// mayHold refuses, before any byte of the body is read, a caller whose token
// grants n on no cache at all: 401 without a valid token, 403 with one that
// grants other permissions only.
func (c caller) mayHold(n need) error {
	if c.claims == nil {
		return c.unauthorized()
	}
	anyPerm := false
	for _, e := range c.claims.Caches {
		if n(e.Permission) {
			return nil
		}
		anyPerm = anyPerm || e.Permission.Any()
	}
	if anyPerm {
		return errAccess
	}
	return c.unauthorized()
}

// cacheBody reads a body that names its cache inside it, authorizing the
// caller on that cache as early as the body allows. size is the body's
// length when exact (upload-path's preamble: exactly size bytes, the NAR
// follows) or its cap otherwise (body must then be capped by
// http.MaxBytesReader). decode parses the whole body and returns the cache
// it names; the returned cache is authorized for every need in needs.
func (s *Server) cacheBody(w http.ResponseWriter, r *http.Request, body io.Reader, size int64, exact bool,
	decode func([]byte) (nixid.CacheName, error), needs ...need) (catalog.Cache, error) {
	if err := callerOf(r).mayHold(needs[0]); err != nil {
		return catalog.Cache{}, err
	}
	head, m, err := readCacheHead(body, min(size, cacheHeadSize))
	switch {
	case exact && (err != nil || int64(len(head)) < min(size, cacheHeadSize) && m == nil):
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return catalog.Cache{}, s.bodyReadError(r, err, "Upload info doesn't match specified size")
	case err != nil:
		return catalog.Cache{}, s.bodyReadError(r, err, "")
	}
	early := false
	if m != nil {
		if name, perr := nixid.ParseCacheName(string(m[1])); perr == nil {
			if _, err := s.authorize(r, name, needs...); err != nil {
				return catalog.Cache{}, err // the rest of the body is never read
			}
			early = true
		}
	}
	if !early {
		hold := size
		if !exact && r.ContentLength > 0 && r.ContentLength < size {
			hold = r.ContentLength
		}
		if !s.preauth.tryAcquire(hold) {
			w.Header().Set("Retry-After", "1")
			return catalog.Cache{}, errPreauthBusy
		}
		defer s.preauth.release(hold)
	}
	var raw []byte
	if exact {
		raw = make([]byte, size)
		copy(raw, head)
		if _, err := io.ReadFull(body, raw[len(head):]); err != nil {
			return catalog.Cache{}, s.bodyReadError(r, err, "Upload info doesn't match specified size")
		}
	} else {
		rest, err := io.ReadAll(body)
		if err != nil {
			return catalog.Cache{}, s.bodyReadError(r, err, "")
		}
		raw = append(head, rest...)
	}
	name, err := decode(raw)
	if err != nil {
		return catalog.Cache{}, err
	}
	return s.authorize(r, name, needs...)
}

// readCacheHead reads up to max bytes of body, stopping as soon as they
// show a leading "cache" member (returned as the regexp's submatches) or
// the body ends, so a client that sent its cache and waits is answered.
func readCacheHead(body io.Reader, max int64) ([]byte, [][]byte, error) {
	head := make([]byte, 0, max)
	for int64(len(head)) < max {
		n, err := body.Read(head[len(head):max])
		head = head[:len(head)+n]
		if m := leadingCacheRE.FindSubmatch(head); m != nil {
			return head, m, nil
		}
		if errors.Is(err, io.EOF) {
			return head, nil, nil
		}
		if err != nil {
			return head, nil, err
		}
	}
	return head, nil, nil
}

// bodyReadError words a failed body read: 413 past the cap, else 400 with
// msg (or the read error).
func (s *Server) bodyReadError(r *http.Request, err error, msg string) error {
	if isTooLarge(err) {
		return withMessage(errTooLarge, "Request body too large (limit %d bytes).", s.cfg.MaxJSONSize)
	}
	if msg == "" {
		msg = fmt.Sprintf("reading the request body: %v", err)
	}
	return requestError("%s", msg)
}

// bodyUnread reports whether r has a body that was not read to its end; an
// error answered then closes the connection (Connection: close), so net/http
// neither waits for nor discards a body the server will not use.
func bodyUnread(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return false
	}
	if b, ok := r.Body.(*idleBody); ok {
		return !b.sawEOF.Load()
	}
	return true
}

// jsonObject is a decode func for cacheBody: the body as one JSON value
// into v (what names it in the 400), whose cache is then read by cacheOf.
func jsonObject[T any](what string, v *T, cacheOf func(*T) string) func([]byte) (nixid.CacheName, error) {
	return func(raw []byte) (nixid.CacheName, error) {
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(v); err != nil {
			return "", requestError("invalid %s: %v", what, err)
		}
		name, err := nixid.ParseCacheName(cacheOf(v))
		if err != nil {
			return "", requestError("%v", err)
		}
		return name, nil
	}
}

// held is how many bytes are held now.
func (b *byteBudget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
