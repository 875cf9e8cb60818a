package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/narinfo"
)

func decodeZstd(t *testing.T, b []byte) []byte {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUploadPath_RoundTrip(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	// Big enough to be chunked (threshold 64 KiB), with some repetition.
	var sb strings.Builder
	for i := 0; sb.Len() < 600<<10; i++ {
		fmt.Fprintf(&sb, "line %d of a test file that compresses reasonably well\n", i*7919%100003)
	}
	nar := fileNAR(sb.String())
	info := uploadInfo("main", "big-1.0", nar)
	info.References = []string{strings.TrimPrefix(info.StorePath, "/nix/store/")}
	st, body := e.upload(e.root, info, nar)
	if st != 200 {
		t.Fatalf("upload: %d %s", st, body)
	}
	var res v1.UploadPathResult
	if err := json.Unmarshal(body, &res); err != nil || res.Kind != v1.UploadKindUploaded || res.FileSize == nil {
		t.Fatalf("upload result %s (%v)", body, err)
	}
	if got := e.missing("main", info.StorePathHash); len(got) != 0 {
		t.Fatalf("still missing: %v", got)
	}

	// narinfo: relative URL, zstd, signed by the cache key over the nix32 hash.
	st, ni := e.do("GET", "/main/"+info.StorePathHash+".narinfo", e.root, nil, nil)
	if st != 200 {
		t.Fatalf("narinfo: %d %s", st, ni)
	}
	parsed, err := narinfo.Parse(bytes.NewReader(ni))
	if err != nil {
		t.Fatalf("parse narinfo %s: %v", ni, err)
	}
	if parsed.URL != "nar/"+info.StorePathHash+".nar" || parsed.Compression != "zstd" || parsed.NarSize != uint64(len(nar)) {
		t.Fatalf("narinfo fields: %s", ni)
	}
	st, cfgBody := e.do("GET", "/_api/v1/cache-config/main", e.root, nil, nil)
	var cc v1.CacheConfig
	if st != 200 || json.Unmarshal(cfgBody, &cc) != nil || cc.PublicKey == nil {
		t.Fatalf("cache-config: %d %s", st, cfgBody)
	}
	fp := narinfo.Fingerprint(parsed.StorePath, parsed.NarHash, parsed.NarSize, parsed.References)
	if len(parsed.Sigs) == 0 || !narinfo.Verify(*cc.PublicKey, fp, parsed.Sigs[0]) {
		t.Fatalf("signature %v does not verify with %s", parsed.Sigs, *cc.PublicKey)
	}

	// NAR: concatenated zstd frames decode to the NAR; ranges are slices of it.
	st, served := e.do("GET", "/main/"+parsed.URL, e.root, nil, nil)
	if st != 200 || !bytes.Equal(decodeZstd(t, served), nar) {
		t.Fatalf("nar GET: %d, %d bytes", st, len(served))
	}
	for _, rg := range []struct {
		hdr        string
		start, end int
	}{{"bytes=0-99", 0, 100}, {"bytes=100-", 100, len(served)}, {"bytes=-50", len(served) - 50, len(served)}} {
		st, part := e.do("GET", "/main/"+parsed.URL, e.root, nil, map[string]string{"Range": rg.hdr})
		if st != 206 || !bytes.Equal(part, served[rg.start:rg.end]) {
			t.Fatalf("range %s: %d, %d bytes", rg.hdr, st, len(part))
		}
	}
	if st, _ := e.do("GET", "/main/"+parsed.URL, e.root, nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(served))}); st != 416 {
		t.Fatalf("unsatisfiable range: %d", st)
	}
	if st, b := e.do("HEAD", "/main/"+parsed.URL, e.root, nil, nil); st != 200 || len(b) != 0 {
		t.Fatalf("HEAD nar: %d %d", st, len(b))
	}

	// The same NAR again is deduplicated.
	st, body = e.upload(e.root, info, nar)
	if err := json.Unmarshal(body, &res); st != 200 || err != nil || res.Kind != v1.UploadKindDeduplicated {
		t.Fatalf("re-upload: %d %s", st, body)
	}
}

func TestUploadPath_Preamble(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := fileNAR("preamble")
	j, _ := json.Marshal(uploadInfo("main", "pre-1", nar))
	body := append(append([]byte{}, j...), nar...)
	st, b := e.do("PUT", "/_api/v1/upload-path", e.root, bytes.NewReader(body),
		map[string]string{v1.HeaderNarInfoPreamble: fmt.Sprint(len(j))})
	if st != 200 {
		t.Fatalf("preamble upload: %d %s", st, b)
	}
}

func TestNixPut_Compressions(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	compress := map[string]func([]byte) []byte{
		"none": func(b []byte) []byte { return b },
		"zstd": func(b []byte) []byte {
			w, _ := zstd.NewWriter(nil)
			return w.EncodeAll(b, nil)
		},
		"xz": func(b []byte) []byte {
			var buf bytes.Buffer
			w, _ := xz.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		"gzip": func(b []byte) []byte {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		"br": func(b []byte) []byte { // no magic: the .br extension says it
			var buf bytes.Buffer
			w := brotli.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		"lzma": func(b []byte) []byte { // a plain .nar: sniffed
			var buf bytes.Buffer
			w, _ := lzma.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
	}
	ext := map[string]string{"none": "", "zstd": ".zst", "xz": ".xz", "gzip": "", "br": ".br", "lzma": ""}
	for kind, fn := range compress {
		t.Run(kind, func(t *testing.T) {
			nar := dirNAR("a", "b", "c-"+kind)
			h, p := testPath("nixput-" + kind)
			url := "nar/" + strings.Repeat("1", 52) + kind[:1] + ".nar" + ext[kind]
			if st, b := e.do("PUT", "/main/nix-cache-info", e.root, strings.NewReader("StoreDir: /nix/store\n"), nil); st/100 != 2 {
				t.Fatalf("PUT nix-cache-info: %d %s", st, b)
			}
			if st, _ := e.do("HEAD", "/main/"+url, e.root, nil, nil); st != 404 {
				t.Fatalf("HEAD before upload: %d", st)
			}
			if st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(fn(nar)), nil); st != 200 {
				t.Fatalf("PUT nar: %d %s", st, b)
			}
			if st, _ := e.do("HEAD", "/main/"+url, e.root, nil, nil); st != 200 {
				t.Fatalf("HEAD after upload: %d", st)
			}
			ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: kind, NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
			if st, b := e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 200 {
				t.Fatalf("PUT narinfo: %d %s", st, b)
			}
			st, got := e.do("GET", "/main/"+h+".narinfo", e.root, nil, nil)
			if st != 200 || !bytes.Contains(got, []byte("URL: nar/"+h+".nar")) {
				t.Fatalf("GET narinfo: %d %s", st, got)
			}
			st, served := e.do("GET", "/main/nar/"+h+".nar", e.root, nil, nil)
			if st != 200 || !bytes.Equal(decodeZstd(t, served), nar) {
				t.Fatalf("GET nar: %d", st)
			}
		})
	}
}

func TestAuxFiles_StoredAndServed(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	h, _ := testPath("ls")
	for _, path := range []string{"/main/log/abc-foo.drv", "/main/" + h + ".ls", "/main/realisations/sha256:abc!out.doi"} {
		body := "content of " + path
		if st, b := e.do("PUT", path, e.root, strings.NewReader(body), map[string]string{"Content-Type": "text/plain"}); st != 200 {
			t.Fatalf("PUT %s: %d %s", path, st, b)
		}
		if st, b := e.do("GET", path, e.root, nil, nil); st != 200 || string(b) != body {
			t.Fatalf("GET %s: %d %q", path, st, b)
		}
	}
	if st, _ := e.do("GET", "/main/log/missing.drv", e.root, nil, nil); st != 404 {
		t.Fatalf("missing log: %d", st)
	}
}

func TestAuthorize_DiscoveryRule(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("private", false)
	e.createCache("public", true)
	nar := fileNAR("secret")
	info := uploadInfo("private", "secret-1", nar)
	if st, b := e.upload(e.root, info, nar); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	other := e.mint(token.MintOptions{Subject: "o", Validity: time.Hour, Pull: []string{"other"}})
	pullOnly := e.mint(token.MintOptions{Subject: "p", Validity: time.Hour, Pull: []string{"private"}})
	missingHash, _ := testPath("never-pushed")
	for _, tc := range []struct {
		name, method, path, tok string
		want                    int
	}{
		{"anon existing object on private", "GET", "/private/" + info.StorePathHash + ".narinfo", "", 401},
		{"anon missing object on private", "GET", "/private/" + missingHash + ".narinfo", "", 401},
		{"anon missing cache", "GET", "/nosuch/" + missingHash + ".narinfo", "", 401},
		{"anon nar on private", "GET", "/private/nar/" + info.StorePathHash + ".nar", "", 401},
		{"anon cache-info private", "GET", "/private/nix-cache-info", "", 401},
		{"unrelated token on private", "GET", "/private/nix-cache-info", other, 401},
		{"pull token: object", "GET", "/private/" + info.StorePathHash + ".narinfo", pullOnly, 200},
		{"pull token: missing object", "GET", "/private/" + missingHash + ".narinfo", pullOnly, 404},
		{"pull token: config", "GET", "/_api/v1/cache-config/private", pullOnly, 200},
		{"pull token cannot configure", "PATCH", "/_api/v1/cache-config/private", pullOnly, 403},
		{"anon on public", "GET", "/public/nix-cache-info", "", 200},
		{"anon missing object on public", "GET", "/public/" + missingHash + ".narinfo", "", 404},
		{"root missing cache", "GET", "/_api/v1/cache-config/nosuch", e.root, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "PATCH" {
				body = strings.NewReader(`{"is_public":true}`)
			}
			if st, b := e.do(tc.method, tc.path, tc.tok, body, nil); st != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, st, b, tc.want)
			}
		})
	}
}

func TestCacheConfig_Lifecycle(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("c1", false)
	if st, b := e.do("POST", "/_api/v1/cache-config/c1", e.root, strings.NewReader(`{"keypair":"Generate","is_public":false,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`), nil); st != 400 || !bytes.Contains(b, []byte("CacheAlreadyExists")) {
		t.Fatalf("duplicate create: %d %s", st, b)
	}
	noRetention := e.mint(token.MintOptions{Subject: "c", Validity: time.Hour, ConfigureCache: []string{"c1"}})
	if st, b := e.do("PATCH", "/_api/v1/cache-config/c1", noRetention, strings.NewReader(`{"is_public":true,"priority":30}`), nil); st != 200 {
		t.Fatalf("configure: %d %s", st, b)
	}
	if st, _ := e.do("PATCH", "/_api/v1/cache-config/c1", noRetention, strings.NewReader(`{"retention_period":{"Period":60}}`), nil); st != 403 {
		t.Fatalf("retention without cq: %d", st)
	}
	if st, b := e.do("PATCH", "/_api/v1/cache-config/c1", e.root, strings.NewReader(`{}`), nil); st != 400 || !bytes.Contains(b, []byte("No modifiable fields")) {
		t.Fatalf("empty patch: %d %s", st, b)
	}
	if st, _ := e.do("PATCH", "/_api/v1/cache-config/c1", e.root, strings.NewReader(`{"retention_period":{"Period":60}}`), nil); st != 200 {
		t.Fatalf("retention: %d", st)
	}
	st, b := e.do("GET", "/_api/v1/cache-config/c1", "", nil, nil)
	var cc v1.CacheConfig
	if st != 200 || json.Unmarshal(b, &cc) != nil || !*cc.IsPublic || *cc.Priority != 30 || cc.RetentionPeriod.Period != 60 {
		t.Fatalf("config after patch: %d %s", st, b)
	}
	if !strings.HasSuffix(*cc.SubstituterEndpoint, "/c1") || !strings.HasSuffix(*cc.APIEndpoint, "/") {
		t.Fatalf("endpoints: %s", b)
	}
	if st, _ := e.do("GET", "/c1/nix-cache-info", "", nil, nil); st != 200 {
		t.Fatalf("public nix-cache-info: %d", st)
	}
	if st, _ := e.do("DELETE", "/_api/v1/cache-config/c1", e.root, nil, nil); st != 200 {
		t.Fatalf("destroy: %d", st)
	}
	if st, _ := e.do("GET", "/_api/v1/cache-config/c1", e.root, nil, nil); st != 404 {
		t.Fatalf("after destroy: %d", st)
	}
}

func TestUploadPath_UnknownLengthBody(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := dirNAR("one", "three", "two")
	info := uploadInfo("main", "chunked-1", nar)
	j, _ := json.Marshal(info)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(nar); i += 7 {
			_, _ = pw.Write(nar[i:min(i+7, len(nar))])
		}
		_ = pw.Close()
	}()
	// An io.Pipe has no length: the client sends Transfer-Encoding: chunked.
	st, b := e.do("PUT", "/_api/v1/upload-path", e.root, pr, map[string]string{v1.HeaderNarInfo: string(j)})
	if st != 200 {
		t.Fatalf("chunked upload: %d %s", st, b)
	}
	if got := e.missing("main", info.StorePathHash); len(got) != 0 {
		t.Fatalf("still missing after chunked upload")
	}
}

func TestHealthAndReady(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if st, b := e.do("GET", p, "", nil, nil); st != 200 {
			t.Fatalf("%s: %d %s", p, st, b)
		}
	}
}
