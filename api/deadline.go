package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// DefaultBodyIdleTimeout is how long a request body may send nothing before
// the request is given up. A client that trickles bytes keeps its request;
// one that announced a body and never sends it (a buggy retry that got
// "100 Continue" and sends nothing, a hostile client) loses it.
const DefaultBodyIdleTimeout = 60 * time.Second

// idleBody arms the connection's read deadline before every read of the
// body, so no read waits longer than idle for the next bytes.
type idleBody struct {
	body io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	// deadlines is false when the connection cannot take read deadlines;
	// the body is then read without one.
	deadlines bool
	sawEOF    atomic.Bool
	stall     atomic.Pointer[bodyStalledError]
}

// bodyStalledError is a body read that hit the idle deadline.
type bodyStalledError struct {
	idle time.Duration
	err  error
}

func (e *bodyStalledError) Error() string {
	return fmt.Sprintf("the request body sent nothing for %v: %v", e.idle, e.err)
}

func (e *bodyStalledError) Unwrap() error { return e.err }

func (b *idleBody) Read(p []byte) (int, error) {
	if b.deadlines {
		if err := b.rc.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
			b.deadlines = false
		}
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.sawEOF.Store(true)
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		st := &bodyStalledError{idle: b.idle, err: err}
		b.stall.Store(st)
		err = st
	}
	return n, err
}

// stalledBody reports the stall of r's body, if it stalled: handlers may
// wrap or reword the read error, the 408 must not depend on it.
func stalledBody(r *http.Request) *bodyStalledError {
	if b, ok := r.Body.(*idleBody); ok {
		return b.stall.Load()
	}
	return nil
}

func (b *idleBody) Close() error { return b.body.Close() }

// withBodyDeadline puts r's body under the idle deadline. The returned func,
// run when the handler is done, clears the deadline if the body was read to
// its end (a keep-alive connection's next request starts without it), and
// otherwise arms it once more: net/http then discards up to 256 KiB of the
// unread body before answering, and that must not wait forever either.
func withBodyDeadline(w http.ResponseWriter, r *http.Request, idle time.Duration) func() {
	if idle <= 0 || r.Body == nil || r.Body == http.NoBody {
		return func() {}
	}
	rc := http.NewResponseController(w)
	b := &idleBody{body: r.Body, rc: rc, idle: idle, deadlines: true}
	r.Body = b
	return func() {
		switch {
		case b.sawEOF.Load():
			_ = rc.SetReadDeadline(time.Time{})
		case b.stall.Load() != nil: // the client already showed it sends nothing
			_ = rc.SetReadDeadline(time.Now())
		default:
			_ = rc.SetReadDeadline(time.Now().Add(idle))
		}
	}
}

// stalled is the 408 for a body that stopped arriving. Whatever the request
// had stored by then is unreferenced and swept like any failed upload.
func stalled(e *bodyStalledError) *Error {
	return &Error{Status: http.StatusRequestTimeout, Kind: "RequestTimeout",
		Message: fmt.Sprintf("The request body sent nothing for %v; the request was given up and nothing was stored.", e.idle), cause: e}
}
