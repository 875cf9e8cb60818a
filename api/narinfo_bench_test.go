package api

import (
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
