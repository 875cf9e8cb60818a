package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTokenRevoke: each form sends its request; bad flags are one-line
// errors before any request.
func TestTokenRevoke(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.URL.Path+" "+strings.TrimSpace(string(b)))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b) // the response echoes the request's fields
	}))
	defer srv.Close()
	useTestServer(t, srv.URL)
	run := func(args ...string) error {
		cmd := rootCmd()
		cmd.SetArgs(append([]string{"token", "revoke"}, args...))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		return cmd.Execute()
	}
	for _, args := range [][]string{
		{"abc123"},
		{"a.b.c"},
		{"--subject", "alice"},
		{"--cache", "prod-*", "--issued-before", "2026-12-01T00:00:00Z"},
		{"--subject", "ci", "--cache", "prod-*", "--issued-before", "2026-12-01"},
	} {
		if err := run(args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{},
		{"--issued-before", "2026-12-01"},
		{"abc", "--subject", "alice"},
		{"--subject", "alice", "--issued-before", "last tuesday"},
	} {
		if err := run(args...); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want a one-line error", args, err)
		}
	}
	want := []string{
		`/_api/v1/revoke-token {"jti":"abc123"}`,
		`/_api/v1/revoke-token {"token":"a.b.c"}`,
		`/_api/v1/revoke-token {"subject":"alice"}`,
		`/_api/v1/revoke-token {"cache":"prod-*","issued_before":"2026-12-01T00:00:00Z"}`,
		`/_api/v1/revoke-token {"subject":"ci","cache":"prod-*","issued_before":"2026-12-01T00:00:00Z"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
