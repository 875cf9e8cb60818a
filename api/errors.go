package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	v1 "github.com/garret-cache/garret/api/v1"
)

// Error is an HTTP error with Attic's kind name. Handlers return it (or wrap
// one); anything else becomes a 500 InternalServerError with a generic message.
type Error struct {
	Status  int
	Kind    string
	Message string
	cause   error
	// answer marks a 5xx that is the route's answer, not a failure (a
	// /readyz that says not ready, polled by load balancers during every
	// election and start): logged at debug, not warn.
	answer bool
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.cause)
	}
	return e.Kind + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// Attic's error kinds, with their status codes and default messages.
var (
	errNotFound       = &Error{Status: http.StatusNotFound, Kind: "NotFound", Message: "The URL you requested was not found."}
	errUnauthorized   = &Error{Status: http.StatusUnauthorized, Kind: "Unauthorized", Message: "Unauthorized."}
	errNoSuchCache    = &Error{Status: http.StatusNotFound, Kind: "NoSuchCache", Message: "The requested cache does not exist."}
	errCacheExists    = &Error{Status: http.StatusBadRequest, Kind: "CacheAlreadyExists", Message: "The cache already exists."}
	errNoSuchObject   = &Error{Status: http.StatusNotFound, Kind: "NoSuchObject", Message: "The requested object does not exist."}
	errAccess         = &Error{Status: http.StatusForbidden, Kind: "AccessError", Message: "Access error: User does not have permission to complete this action."}
	errIncompleteNar  = &Error{Status: http.StatusServiceUnavailable, Kind: "IncompleteNar", Message: "The requested NAR has missing chunks and needs to be repaired."}
	errInternal       = &Error{Status: http.StatusInternalServerError, Kind: "InternalServerError", Message: "The server encountered an internal error or misconfiguration."}
	errRangeNotSatisf = &Error{Status: http.StatusRequestedRangeNotSatisfiable, Kind: "RangeNotSatisfiable", Message: "The requested range is not satisfiable."}
)

// requestError is Attic's RequestError (400) with a detail message.
func requestError(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Kind: "RequestError", Message: "General request error: " + fmt.Sprintf(format, args...)}
}

// withMessage returns a copy of e with a more precise message.
func withMessage(e *Error, format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

// unavailable is a 503 naming the cause (not leader, no quorum, shutting down).
func unavailable(cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Kind: "ServiceUnavailable",
		Message: "The catalog cannot accept writes right now: " + cause.Error(), cause: cause}
}

// writeError renders err as Attic's JSON error body. Internal errors are logged
// with the request id and replaced by a generic message.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
		e = errInternal
	} else if e.Status >= 500 {
		level := slog.LevelWarn
		if e.answer {
			level = slog.LevelDebug
		}
		log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(v1.ErrorResponse{Code: e.Status, Error: e.Kind, Message: e.Message})
}

// handlerFunc is an HTTP handler that returns an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc to http.Handler using writeError.
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			if st := stalledBody(r); st != nil {
				err = stalled(st) // however the handler worded the failed read
			}
			if bodyUnread(r) {
				w.Header().Set("Connection", "close")
			}
			writeError(w, r, s.log, err)
		}
	})
}
