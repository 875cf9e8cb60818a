package api

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/narinfo"
)

func xzOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// nixPush does what `nix copy --to BASE/main` does for one path: PUT the
// NAR file, then the narinfo naming it.
func (e *testEnv) nixPush(base, seed, compression string, file []byte, nar []byte) (hash, url string) {
	e.t.Helper()
	h, p := testPath(seed)
	ext := map[string]string{"xz": ".xz", "zstd": ".zst", "none": "", "bzip2": ".bz2"}[compression]
	url = "nar/" + h + strings.Repeat("0", 20) + ".nar" + ext
	if st, b := e.do("PUT", base+"/main/"+url, e.root, bytes.NewReader(file), nil); st != 200 {
		e.t.Fatalf("PUT %s: %d %s", url, st, b)
	}
	ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: compression, NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
	if st, b := e.do("PUT", base+"/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 200 {
		e.t.Fatalf("PUT narinfo: %d %s", st, b)
	}
	return h, url
}

// TestNixPut_UploadedURLServed: a client that remembers the narinfo it
// uploaded to the substituter URL downloads the NAR at its own URL, in its
// own compression: the xz file byte for byte, zstd and none from the chunks.
func TestNixPut_UploadedURLServed(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	for _, tc := range []struct {
		compression string
		file        func([]byte) []byte
		decode      func([]byte) []byte
	}{
		{"xz", func(b []byte) []byte { return xzOf(t, b) }, nil},
		{"zstd", zstdOf, func(b []byte) []byte { return decodeZstd(t, b) }},
		{"none", func(b []byte) []byte { return b }, nil},
	} {
		t.Run(tc.compression, func(t *testing.T) {
			nar := dirNAR("served-"+tc.compression, "x", "y")
			file := tc.file(nar)
			_, url := e.nixPush("", "served-"+tc.compression, tc.compression, file, nar)
			st, got := e.do("GET", "/main/"+url, e.root, nil, nil)
			if tc.decode != nil {
				got = tc.decode(got)
			} else if tc.compression == "none" {
				file = nar
			}
			want := file
			if tc.decode != nil {
				want = nar
			}
			if st != 200 || !bytes.Equal(got, want) {
				t.Fatalf("GET %s: %d, %d bytes; want the %d bytes uploaded", url, st, len(got), len(want))
			}
			if tc.compression == "zstd" {
				return
			}
			st, part := e.do("GET", "/main/"+url, e.root, nil, map[string]string{"Range": "bytes=5-14"})
			if st != 206 || !bytes.Equal(part, want[5:15]) {
				t.Fatalf("Range: %d %q, want %q", st, part, want[5:15])
			}
			// A pull-only token reads it; an anonymous caller learns nothing.
			pull := e.mint(token.MintOptions{Subject: "p", Validity: time.Hour, Pull: []string{"main"}})
			if st, _ := e.do("HEAD", "/main/"+url, pull, nil, nil); st != 200 {
				t.Fatalf("HEAD with pull: %d", st)
			}
			if st, _ := e.do("GET", "/main/"+url, "", nil, nil); st != 401 {
				t.Fatalf("anonymous GET on a private cache: %d", st)
			}
		})
	}
}

// TestNixPut_UploadPrefix: /upload/CACHE takes Nix's uploads like CACHE, and
// does not keep files it would only need for a client-side cache entry of
// the substituter URL.
func TestNixPut_UploadPrefix(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	if st, b := e.do("GET", "/upload/main/nix-cache-info", e.root, nil, nil); st != 200 || !bytes.Contains(b, []byte("StoreDir: /nix/store")) {
		t.Fatalf("GET /upload/main/nix-cache-info: %d %s", st, b)
	}
	nar := dirNAR("load", "p", "u")
	h, url := e.nixPush("/upload", "via-upload", "xz", xzOf(t, nar), nar)
	if st, b := e.do("GET", "/main/"+h+".narinfo", e.root, nil, nil); st != 200 || !bytes.Contains(b, []byte("URL: nar/"+h+".nar")) {
		t.Fatalf("narinfo on the substituter URL: %d %s", st, b)
	}
	if st, b := e.do("GET", "/upload/main/"+h+".narinfo", e.root, nil, nil); st != 200 {
		t.Fatalf("narinfo under /upload: %d %s", st, b)
	}
	if st, _ := e.do("HEAD", "/main/"+url, e.root, nil, nil); st != 404 {
		t.Fatalf("the xz file of an /upload push was kept: HEAD %s = %d", url, st)
	}
	var files int
	_ = e.cat.ForEachManifest(func(chunkstore.ManifestID) error { files++; return nil })
	if files != 1 {
		t.Fatalf("%d live manifests after one /upload push, want only the NAR's", files)
	}
	// zstd needs no file: its URL is served under either prefix.
	nar2 := dirNAR("s", "td", "z")
	_, url2 := e.nixPush("/upload", "via-upload-zstd", "zstd", zstdOf(nar2), nar2)
	for _, base := range []string{"", "/upload"} {
		if st, b := e.do("GET", base+"/main/"+url2, e.root, nil, nil); st != 200 || !bytes.Equal(decodeZstd(t, b), nar2) {
			t.Fatalf("GET %s/main/%s: %d", base, url2, st)
		}
	}
	if st, b := e.do("POST", "/_api/v1/cache-config/upload", e.root, strings.NewReader(`{"keypair":"Generate","is_public":false,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`), nil); st != 400 || !bytes.Contains(b, []byte("reserved")) {
		t.Fatalf("creating a cache named upload: %d %s", st, b)
	}
	if st, b := e.do("GET", "/_api/v1/cache-config/main", e.root, nil, nil); st != 200 || !bytes.Contains(b, []byte(`"upload_endpoint":"`+e.srv.URL+`/upload/main"`)) {
		t.Fatalf("cache-config lacks the upload endpoint: %d %s", st, b)
	}
}

// TestNixPut_SameNarOtherPath: Nix HEADs a NAR file and skips uploading it
// when it is there (another path with the same contents): the narinfo that
// follows is accepted without a NAR upload.
func TestNixPut_SameNarOtherPath(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := dirNAR("contents", "same")
	_, url := e.nixPush("", "first", "zstd", zstdOf(nar), nar)
	if st, _ := e.do("HEAD", "/main/"+url, e.root, nil, nil); st != 200 {
		t.Fatalf("HEAD of a committed NAR file: %d", st)
	}
	h2, p2 := testPath("second")
	ni := narinfo.NarInfo{StorePath: p2, URL: url, Compression: "zstd", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
	if st, b := e.do("PUT", "/main/"+h2+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 200 {
		t.Fatalf("narinfo of a second path with the same NAR: %d %s", st, b)
	}
	if st, b := e.do("GET", "/main/nar/"+h2+".nar", e.root, nil, nil); st != 200 || !bytes.Equal(decodeZstd(t, b), nar) {
		t.Fatalf("NAR of the second path: %d", st)
	}
	// A narinfo whose NAR was never uploaded is still refused.
	h3, p3 := testPath("third")
	ni = narinfo.NarInfo{StorePath: p3, URL: "nar/" + strings.Repeat("1", 52) + ".nar.zst", Compression: "zstd", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
	if st, _ := e.do("PUT", "/main/"+h3+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 400 {
		t.Fatalf("narinfo without its NAR: %d", st)
	}
	// A push-only token does not learn about committed NARs (it uploads again).
	push := e.mint(token.MintOptions{Subject: "ci", Validity: time.Hour, Push: []string{"main"}})
	if st, _ := e.do("HEAD", "/main/"+url, push, nil, nil); st != 404 {
		t.Fatalf("HEAD by a push-only token: %d", st)
	}
}
