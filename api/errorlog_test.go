package api

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWriteError_LogLevels: a 5xx is a warning, except /readyz's not-ready
// answer (debug: load balancers poll it through every election); the
// client gets the same body either way.
func TestWriteError_LogLevels(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{notReady(errors.New("catalog: no leader known")), "level=DEBUG"},
		{unavailable(errors.New("no quorum")), "level=WARN"},
		{errors.New("disk on fire"), "level=ERROR"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		w := httptest.NewRecorder()
		writeError(w, httptest.NewRequest(http.MethodGet, "/readyz", nil), log, c.err)
		if !strings.HasPrefix(strings.SplitN(buf.String(), " ", 2)[1], c.want) {
			t.Errorf("%v logged %q, want %s", c.err, buf.String(), c.want)
		}
		if w.Code < 500 || !strings.Contains(w.Body.String(), `"code":`) {
			t.Errorf("%v answered %d %s", c.err, w.Code, w.Body.String())
		}
	}
}
