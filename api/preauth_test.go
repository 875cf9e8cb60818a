package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/eventually"
)

// rawRequest writes a request's head and the first bytes of its body over a
// fresh connection, never the rest, and reads the answer within 5 s. A
// server that waits for the body before answering fails the read.
func (e *testEnv) rawRequest(method, path, tok string, hdr map[string]string, contentLength int64, partial string) *http.Response {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: garret.test\r\nContent-Length: %d\r\n", method, path, contentLength)
	if tok != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", tok)
	}
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n" + partial)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		e.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("%s %s: no answer before the body was sent: %v", method, path, err)
	}
	return resp
}

// wantRefused checks a refusal: the status, Attic's JSON error, Connection: close.
func wantRefused(t *testing.T, what string, resp *http.Response, status int) {
	t.Helper()
	defer resp.Body.Close()
	var er v1.ErrorResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
		t.Fatalf("%s: %d without Attic's JSON error: %v", what, resp.StatusCode, err)
	}
	if resp.StatusCode != status || er.Code != status {
		t.Fatalf("%s: %d %+v, want %d", what, resp.StatusCode, er, status)
	}
	if !resp.Close {
		t.Fatalf("%s: refused before the body was read but the connection stays open", what)
	}
}

func TestPreauth_NoTokenRefusedBeforeBody(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("c", false)
	h, _ := testPath("p")
	const big = 1 << 30
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
	}{
		{"PUT", "/_api/v1/upload-path", map[string]string{v1.HeaderNarInfoPreamble: "1000000"}},
		{"POST", "/_api/v1/get-missing-paths", nil},
		{"POST", "/_api/v1/delete-paths", nil},
		{"PATCH", "/_api/v1/cache-config/c", nil},
		{"POST", "/_api/v1/cache-config/d", nil},
		{"POST", "/_api/v1/revoke-token", nil},
		{"PUT", "/c/" + h + ".narinfo", nil},
		{"PUT", "/upload/c/" + h + ".narinfo", nil},
		{"PUT", "/c/nar/" + h + ".nar.xz", nil},
		{"PUT", "/c/log/x.drv", nil},
	} {
		wantRefused(t, c.method+" "+c.path, e.rawRequest(c.method, c.path, "", c.hdr, big, ""), http.StatusUnauthorized)
	}
}

func TestPreauth_WrongCacheRefusedBeforePreamble(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("a", false)
	e.createCache("b", false)
	pushA := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, Pull: []string{"a", "b"}, Push: []string{"a"}})
	pullOnly := e.mint(token.MintOptions{Subject: "r", Validity: time.Hour, Pull: []string{"*"}})

	nar := fileNAR("x")
	info, _ := json.Marshal(uploadInfo("b", "p", nar))
	// The preamble claims 1 MiB - 1; only its first bytes (with the cache) are sent.
	hdr := map[string]string{v1.HeaderNarInfoPreamble: fmt.Sprint(1<<20 - 1)}
	wantRefused(t, "push to b with a token for a", e.rawRequest("PUT", "/_api/v1/upload-path", pushA, hdr, 1<<30, string(info[:40])), http.StatusForbidden)
	// A token that can push nowhere is refused before a single byte.
	wantRefused(t, "pull-only token", e.rawRequest("PUT", "/_api/v1/upload-path", pullOnly, hdr, 1<<30, ""), http.StatusForbidden)
	wantRefused(t, "pull-only get-missing-paths", e.rawRequest("POST", "/_api/v1/get-missing-paths", pullOnly, nil, 1<<20, ""), http.StatusForbidden)
	// The header form is authorized before the body too.
	hdr = map[string]string{v1.HeaderNarInfo: string(info)}
	wantRefused(t, "header form, wrong cache", e.rawRequest("PUT", "/_api/v1/upload-path", pushA, hdr, 1<<30, ""), http.StatusForbidden)
	// get-missing-paths names its cache first, like upload-path.
	wantRefused(t, "get-missing-paths, wrong cache", e.rawRequest("POST", "/_api/v1/get-missing-paths", pushA, nil, 1<<20, `{"cache":"b","store_path_hashes":[`), http.StatusForbidden)

	// The right cache still works, preamble and all.
	info, _ = json.Marshal(uploadInfo("a", "p", nar))
	body := append(append([]byte{}, info...), nar...)
	st, b := e.do("PUT", "/_api/v1/upload-path", pushA, strings.NewReader(string(body)),
		map[string]string{v1.HeaderNarInfoPreamble: fmt.Sprint(len(info))})
	if st != 200 {
		t.Fatalf("push to a: %d %s", st, b)
	}
}

func TestPreauth_UnauthorizedBytesAreBounded(t *testing.T) {
	ac := DefaultConfig()
	ac.MaxUnauthorizedBytes = 1500
	e := newTestEnvWith(t, ac)
	e.createCache("a", false)
	pushA := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, Push: []string{"a"}})
	// A preamble that names its cache last cannot be authorized before it
	// is read whole: the first one holds 1000 bytes of the budget while it
	// trickles in, the second does not fit.
	hdr := map[string]string{v1.HeaderNarInfoPreamble: "1000"}
	head := `{"store_path_hash":"` + strings.Repeat(" ", 200)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /_api/v1/upload-path HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nAuthorization: Bearer %s\r\n%s: 1000\r\n\r\n%s",
		pushA, v1.HeaderNarInfoPreamble, head)
	eventually.True(t, "the first preamble to hold the budget", func() bool { return e.api.preauth.held() == 1000 })
	wantRefused(t, "second unauthorized preamble", e.rawRequest("PUT", "/_api/v1/upload-path", pushA, hdr, 100000, head), http.StatusServiceUnavailable)
	conn.Close()
	eventually.True(t, "the budget to be released", func() bool { return e.api.preauth.held() == 0 })

	// Cache first: authorized after its first bytes, holding nothing unauthorized.
	nar := fileNAR("y")
	info, _ := json.Marshal(uploadInfo("a", "q", nar))
	st, b := e.do("PUT", "/_api/v1/upload-path", pushA, strings.NewReader(string(info)+string(nar)),
		map[string]string{v1.HeaderNarInfoPreamble: fmt.Sprint(len(info))})
	if st != 200 {
		t.Fatalf("push with the cache first: %d %s", st, b)
	}
}
