package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
)

// TestBodyDeadline_StalledBodiesGiveUp: a client that announces a body and
// sends nothing (Nix's retried PUT after "100 Continue"), or stops half-way,
// gets a 408 by the idle deadline, and nothing is stored.
func TestBodyDeadline_StalledBodiesGiveUp(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	const idle = 400 * time.Millisecond
	e.api.cfg.BodyIdleTimeout = idle
	nar := fileNAR(strings.Repeat("stalled ", 4096))
	h, _ := testPath("stalled")
	url := "nar/" + h + strings.Repeat("0", 20) + ".nar"
	info, _ := json.Marshal(uploadInfo("main", "stalled-attic", nar))
	for _, tc := range []struct {
		name, head string
		sent       []byte
	}{
		{"NAR PUT after 100 Continue, no body", "PUT /main/" + url + " HTTP/1.1\r\nExpect: 100-continue\r\n", nil},
		{"NAR PUT stopping half-way", "PUT /main/" + url + " HTTP/1.1\r\n", nar[:len(nar)/2]},
		{"narinfo PUT, no body", "PUT /main/" + h + ".narinfo HTTP/1.1\r\n", nil},
		{"upload-path stopping half-way", "PUT /_api/v1/upload-path HTTP/1.1\r\n" + v1.HeaderNarInfo + ": " + string(info) + "\r\n", nar[:1000]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			fmt.Fprintf(conn, "%sHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", tc.head, e.root, len(nar))
			_, _ = conn.Write(tc.sent)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err == nil && resp.StatusCode == http.StatusContinue {
				resp, err = http.ReadResponse(br, nil)
			}
			if err != nil {
				t.Fatalf("no answer to a stalled body within 10 s: %v", err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			took := time.Since(start)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body.String(), `"RequestTimeout"`) {
				t.Fatalf("stalled body: %d %s", resp.StatusCode, body.String())
			}
			if took < idle || took > idle+2*time.Second {
				t.Fatalf("answered after %v; the idle deadline is %v", took, idle)
			}
			t.Logf("%s: 408 after %v", tc.name, took.Round(time.Millisecond))
		})
	}
	if st, _ := e.do("HEAD", "/main/"+url, e.root, nil, nil); st != 404 {
		t.Fatalf("a stalled NAR was staged: HEAD %d", st)
	}
	if n := e.sweepChunks(); n != 0 {
		t.Fatalf("stalled uploads left %d chunks", n)
	}
	// The same connection-level deadline does not hurt a normal request.
	if st, b := e.upload(e.root, uploadInfo("main", "after-stall", nar), nar); st != 200 {
		t.Fatalf("upload after the stalls: %d %s", st, b)
	}
}
