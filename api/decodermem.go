package api

import (
	"errors"
	"net/http"

	"github.com/garret-cache/garret/internal/nixcompress"
)

// decoderMemoryError answers an upload whose decompressor could not reserve
// its memory from the node's decoder-memory budget (nil for other errors):
//   - 413 when the stream declares more than the whole budget: no retry can
//     succeed, the upload must be recompressed (a smaller xz dictionary or
//     zstd window) or the budget raised;
//   - 503 when the budget stayed in use by other uploads for as long as a
//     request body may stall: the node is busy, the same upload succeeds
//     later, as after any other 503.
func decoderMemoryError(err error) *Error {
	var be *nixcompress.BudgetError
	if !errors.As(err, &be) {
		return nil
	}
	if be.Never {
		return &Error{Status: http.StatusRequestEntityTooLarge, Kind: "PayloadTooLarge",
			Message: "The upload's compression needs more decoder memory than this node allows: " + be.Error(), cause: err}
	}
	return &Error{Status: http.StatusServiceUnavailable, Kind: "ServiceUnavailable",
		Message: "The node is busy decompressing other uploads: " + be.Error(), cause: err}
}
