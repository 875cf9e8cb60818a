package api

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkNarInfo is one narinfo GET of a public cache through the whole
// handler chain, without the network: what a request costs the server.
func BenchmarkNarInfo(b *testing.B) {
	e := newTestEnv(b)
	e.createCache("pub", true)
	nar := fileNAR("bench")
	info := uploadInfo("pub", "bench", nar)
	info.References = []string{info.StorePath[len("/nix/store/"):]}
	if st, body := e.upload(e.root, info, nar); st != 200 {
		b.Fatalf("upload: %d %s", st, body)
	}
	h := e.api.Handler()
	path := "/pub/" + info.StorePathHash + ".narinfo"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			b.Fatalf("narinfo: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkNarDownload downloads one 64 MiB NAR (random, so its frames are
// its size) over a loopback HTTP connection: what serving costs per byte.
func BenchmarkNarDownload(b *testing.B) {
	e := newTestEnv(b)
	e.createCache("pub", true)
	content := make([]byte, 64<<20)
	_, _ = rand.Read(content)
	nar := fileNAR(string(content))
	info := uploadInfo("pub", "big", nar)
	if st, body := e.upload(e.root, info, nar); st != 200 {
		b.Fatalf("upload: %d %s", st, body)
	}
	url := e.srv.URL + "/pub/nar/" + info.StorePathHash + ".nar"
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	b.SetBytes(int64(len(nar)))
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
			b.Fatalf("%d %v", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}
