package api

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/narinfo"
)

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// TestAuxFiles_NewerNixUploads: what Nix 2.32–2.35 PUT besides NARs —
// debug-info entries, build-trace-v2 entries, and narinfo, .ls and logs with
// a Content-Encoding — is stored and served back decoded.
func TestAuxFiles_NewerNixUploads(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	h, _ := testPath("ls-encoded")
	debug := `{"archive":"../nar/100vxs724qr46phz8m24iswmg9p3785hsyagz0kchf6q6gf06sw6.nar","member":"lib/debug/.build-id/02/623eda209c26a59b1a8638ff7752f6b945c26b.debug"}`
	for _, tc := range []struct {
		path, body, encoding string
		encode               func([]byte) []byte
	}{
		{"/main/debuginfo/02623eda209c26a59b1a8638ff7752f6b945c26b.debug", debug, "", nil},
		{"/main/build-trace-v2/0mx2c3a5gmpkkcxjbzpcb2ph5xl7r5w3-hello-2.12.drv/out.doi", `{"id":"sha256:x!out"}`, "", nil},
		{"/main/" + h + ".ls", `{"version":1,"root":{"type":"regular","size":3}}`, "zstd", zstdOf},
		{"/main/log/0mx2c3a5gmpkkcxjbzpcb2ph5xl7r5w3-hello-2.12.drv", strings.Repeat("building\n", 1000), "xz", func(b []byte) []byte { return xzOf(t, b) }},
		{"/main/log/1mx2c3a5gmpkkcxjbzpcb2ph5xl7r5w3-hello-2.12.drv", "gzip log\n", "gzip", gzipOf},
	} {
		body := []byte(tc.body)
		hdr := map[string]string{"Content-Type": "text/plain"}
		if tc.encode != nil {
			body, hdr["Content-Encoding"] = tc.encode(body), tc.encoding
		}
		if st, b := e.do("PUT", tc.path, e.root, bytes.NewReader(body), hdr); st != 200 {
			t.Fatalf("PUT %s: %d %s", tc.path, st, b)
		}
		if st, b := e.do("GET", tc.path, e.root, nil, nil); st != 200 || string(b) != tc.body {
			t.Fatalf("GET %s: %d %.80q, want %.80q", tc.path, st, b, tc.body)
		}
	}

	// A narinfo sent with Content-Encoding (narinfo-compression = xz).
	nar := dirNAR("enc", "info")
	hn, p := testPath("narinfo-encoded")
	url := "nar/" + hn + strings.Repeat("0", 20) + ".nar.zst"
	if st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(zstdOf(nar)), nil); st != 200 {
		t.Fatalf("PUT nar: %d %s", st, b)
	}
	ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: "zstd", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
	if st, b := e.do("PUT", "/main/"+hn+".narinfo", e.root, bytes.NewReader(xzOf(t, []byte(ni.String()))), map[string]string{"Content-Encoding": "xz"}); st != 200 {
		t.Fatalf("PUT narinfo with Content-Encoding xz: %d %s", st, b)
	}
	if st, b := e.do("GET", "/main/"+hn+".narinfo", e.root, nil, nil); st != 200 || !bytes.Contains(b, []byte("StorePath: "+p)) {
		t.Fatalf("GET narinfo: %d %s", st, b)
	}
}

func TestAuxFiles_BadInput(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	hn, _ := testPath("bomb")
	// 2 MiB of zeros as a few hundred bytes of xz: past max-nar-info-size (1 MiB) decoded.
	bomb := xzOf(t, make([]byte, 2<<20))
	for _, tc := range []struct {
		name, path string
		body       []byte
		hdr        map[string]string
		want       int
	}{
		{"decompression bomb", "/main/" + hn + ".narinfo", bomb, map[string]string{"Content-Encoding": "xz"}, 413},
		{"unknown encoding", "/main/log/x.drv", []byte("x"), map[string]string{"Content-Encoding": "compress-9000"}, 415},
		{"corrupt encoding", "/main/log/x.drv", []byte("not gzip"), map[string]string{"Content-Encoding": "gzip"}, 400},
		{"dot-dot segment", "/main/build-trace-v2/../out.doi", []byte("x"), nil, 404},
		{"dot segment", "/main/build-trace-v2/a.drv/..", []byte("x"), nil, 404},
		{"bad characters", "/main/debuginfo/a%20b", []byte("x"), nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, b := e.do("PUT", tc.path, e.root, bytes.NewReader(tc.body), tc.hdr); st != tc.want || !bytes.Contains(b, []byte(`"error"`)) {
				t.Fatalf("PUT %s: %d %s, want %d with Attic's error body", tc.path, st, b, tc.want)
			}
		})
	}
	if n := e.sweepChunks(); n != 0 {
		t.Fatalf("refused uploads left %d chunks", n)
	}
}
