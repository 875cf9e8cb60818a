package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/diskspace"
)

// TestDiskFloor_PushesGet507: below the floor every push is a 507 sent
// before the body (no "100 Continue"), while reads, nix-cache-info and
// catalog-only writes keep working and anonymous pushes still get their 401.
func TestDiskFloor_PushesGet507(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 20)
	e := newTestEnvDeps(t, DefaultConfig(), Deps{DiskFloor: &diskspace.Floor{Dir: "/data", Min: 1 << 30,
		Stat: func(string) (diskspace.Usage, error) {
			return diskspace.Usage{Free: free.Load(), Total: 100 << 30}, nil
		}}})
	e.createCache("main", false)

	nar := fileNAR("disk full")
	h, _ := testPath("diskfull")
	info, _ := json.Marshal(uploadInfo("main", "diskfull", nar))
	url := "nar/" + h + strings.Repeat("0", 20) + ".nar"
	for _, head := range []string{
		"PUT /main/" + url,
		"PUT /upload/main/" + url,
		"PUT /main/" + h + ".narinfo",
		"PUT /main/" + h + ".ls",
		"PUT /main/log/" + h + "-x.drv",
		"PUT /_api/v1/upload-path HTTP/1.1\r\n" + v1.HeaderNarInfo + ": " + string(info),
	} {
		if !strings.Contains(head, "HTTP/1.1") {
			head += " HTTP/1.1"
		}
		st, body, continued := rawPut(t, e, head, e.root, nar)
		if st != http.StatusInsufficientStorage || !strings.Contains(body, `"InsufficientStorage"`) || continued {
			t.Errorf("%s: %d %s (100 Continue sent: %v); want 507 before the body", strings.SplitN(head, "\r\n", 2)[0], st, body, continued)
		}
		if strings.Contains(body, "MiB") || strings.Contains(body, "/data") {
			t.Errorf("507 body tells the client the node's disk: %s", body)
		}
	}
	if st, _, _ := rawPut(t, e, "PUT /main/"+url+" HTTP/1.1", "", nar); st != http.StatusUnauthorized {
		t.Errorf("anonymous push below the floor: %d, want 401", st)
	}
	if st, b := e.do("PUT", "/main/nix-cache-info", e.root, strings.NewReader("StoreDir: /nix/store\n"), nil); st != http.StatusNoContent {
		t.Errorf("PUT nix-cache-info: %d %s", st, b)
	}
	if st, b := e.do("GET", "/main/nix-cache-info", e.root, nil, nil); st != 200 {
		t.Errorf("GET nix-cache-info: %d %s", st, b)
	}
	e.createCache("other", true) // a catalog write
	if got := e.missing("main", h); len(got) != 1 {
		t.Errorf("get-missing-paths: %v", got)
	}

	free.Store(2 << 30)
	if st, b := e.upload(e.root, uploadInfo("main", "diskfull", nar), nar); st != 200 {
		t.Fatalf("upload with space again: %d %s", st, b)
	}
}

// TestDiskFloor_Zero: a floor of 0 never measures nor refuses.
func TestDiskFloor_Zero(t *testing.T) {
	e := newTestEnvDeps(t, DefaultConfig(), Deps{DiskFloor: &diskspace.Floor{Dir: "/data", Min: 0,
		Stat: func(string) (diskspace.Usage, error) {
			t.Error("statfs with a floor of 0")
			return diskspace.Usage{}, nil
		}}})
	e.createCache("main", false)
	nar := fileNAR("no floor")
	if st, b := e.upload(e.root, uploadInfo("main", "nofloor", nar), nar); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
}

// rawPut sends a PUT with "Expect: 100-continue" and answers the status,
// the body and whether the server asked for the body.
func rawPut(t *testing.T, e *testEnv, head, tok string, body []byte) (int, string, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auth := ""
	if tok != "" {
		auth = "Authorization: Bearer " + tok + "\r\n"
	}
	fmt.Fprintf(conn, "%s\r\nHost: x\r\n%sExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", head, auth, len(body))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	continued := false
	if resp.StatusCode == http.StatusContinue {
		continued = true
		_, _ = conn.Write(body)
		if resp, err = http.ReadResponse(br, nil); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), continued
}
