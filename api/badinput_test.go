package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/narinfo"
)

// badCase is one malformed or unauthorised request. seed names the store path
// it tries to create; after the request, that path must still be missing and
// a zero-grace sweep must leave no more chunks than before.
type badCase struct {
	name string
	seed string
	want int
	run  func(e *testEnv, seed string) (int, []byte)
}

func uploadCase(name string, want int, mutate func(info *v1.UploadPathNarInfo, nar []byte) []byte) badCase {
	return badCase{name: name, want: want, run: func(e *testEnv, seed string) (int, []byte) {
		nar := dirNAR("a", "b")
		info := uploadInfo("main", seed, nar)
		body := mutate(&info, nar)
		return e.upload(e.root, info, body)
	}}
}

// rawNARCase uploads a NAR built by hand, with honest hash and size claims.
func rawNARCase(name string, nar []byte) badCase {
	return uploadCase(name, 400, func(info *v1.UploadPathNarInfo, _ []byte) []byte {
		info.NarHash, info.NarSize = narHashOf(nar).Hex(), int64(len(nar))
		return nar
	})
}

func tokenCase(name string, tok func(e *testEnv) string) badCase {
	return badCase{name: name, want: 401, run: func(e *testEnv, seed string) (int, []byte) {
		nar := fileNAR("token case")
		return e.upload(tok(e), uploadInfo("main", seed, nar), nar)
	}}
}

// nixPutCase uploads body as Nix's NAR PUT and then a narinfo for it.
func nixPutCase(name, url string, body func(nar []byte) []byte, edit func(ni *narinfo.NarInfo)) badCase {
	return badCase{name: name, want: 400, run: func(e *testEnv, seed string) (int, []byte) {
		nar := dirNAR("x", "y")
		h, p := testPath(seed)
		st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(body(nar)), nil)
		if st != 200 {
			return st, b
		}
		ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: "zstd", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
		edit(&ni)
		return e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil)
	}}
}

func zstdOf(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	return w.EncodeAll(b, nil)
}

func unsignedNoneToken() string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(map[string]any{"sub": "x", "exp": time.Now().Add(time.Hour).Unix(),
		"https://jwt.attic.rs/v1": map[string]any{"caches": map[string]any{"*": map[string]int{"r": 1, "w": 1}}}})
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "."
}

func badCases() []badCase {
	all := []string{"*"}
	fileHash := strings.Repeat("0", 52)
	return []badCase{
		uploadCase("NarHash lie", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte {
			info.NarHash = narHashOf([]byte("other")).Hex()
			return nar
		}),
		uploadCase("NarSize larger than body (truncated body)", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte {
			info.NarSize += 100
			return nar
		}),
		uploadCase("NarSize smaller than NAR (truncated NAR)", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte {
			info.NarSize -= 8
			return nar
		}),
		uploadCase("body cut half way", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte { return nar[:len(nar)/2] }),
		rawNARCase("bad magic", func() []byte {
			var n narEnc
			n.toks("nix-archive-2", "(", "type", "regular", "contents", "x", ")")
			return n.Bytes()
		}()),
		rawNARCase("unsorted entries", dirNAR("b", "a")),
		rawNARCase("duplicate entries", dirNAR("a", "a")),
		rawNARCase("name with slash", dirNAR("a/b")),
		rawNARCase("name dot-dot", dirNAR("..")),
		rawNARCase("name with NUL", dirNAR("a\x00b")),
		rawNARCase("trailing garbage", append(fileNAR("x"), 1, 2, 3, 4, 5, 6, 7, 8)),
		uploadCase("invalid cache name", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte { info.Cache = "-bad"; return nar }),
		uploadCase("invalid store path hash", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte {
			info.StorePathHash = "e" + info.StorePathHash[1:]
			return nar
		}),
		uploadCase("store path does not match hash", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte {
			info.StorePath = "/nix/store/" + strings.Repeat("0", 32) + "-other"
			return nar
		}),
		uploadCase("invalid reference", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte {
			info.References = []string{"../../etc/passwd"}
			return nar
		}),
		uploadCase("malformed nar_hash", 400, func(info *v1.UploadPathNarInfo, nar []byte) []byte { info.NarHash = "md5:abc"; return nar }),
		{name: "missing upload info", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("PUT", "/_api/v1/upload-path", e.root, bytes.NewReader(fileNAR("x")), nil)
		}},
		{name: "preamble larger than limit", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("PUT", "/_api/v1/upload-path", e.root, strings.NewReader("{}"), map[string]string{v1.HeaderNarInfoPreamble: fmt.Sprint(2 << 20)})
		}},
		{name: "preamble shorter than declared", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("PUT", "/_api/v1/upload-path", e.root, strings.NewReader(`{"cache":"main"}`), map[string]string{v1.HeaderNarInfoPreamble: "500"})
		}},
		{name: "upload info not JSON", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("PUT", "/_api/v1/upload-path", e.root, bytes.NewReader(fileNAR("x")), map[string]string{v1.HeaderNarInfo: "{nope"})
		}},
		{name: "oversized JSON body", want: 413, run: func(e *testEnv, _ string) (int, []byte) {
			big := `{"cache":"main","store_path_hashes":["` + strings.Repeat("a", 3<<20) + `"]}`
			return e.do("POST", "/_api/v1/get-missing-paths", e.root, strings.NewReader(big), nil)
		}},
		{name: "oversized header", want: 431, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("GET", "/main/nix-cache-info", e.root, nil, map[string]string{"X-Big": strings.Repeat("b", 100<<10)})
		}},
		{name: "get-missing-paths invalid hash", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("POST", "/_api/v1/get-missing-paths", e.root, strings.NewReader(`{"cache":"main","store_path_hashes":["nothash"]}`), nil)
		}},
		{name: "narinfo GET invalid hash", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("GET", "/main/not-a-hash.narinfo", e.root, nil, nil)
		}},
		{name: "create cache invalid name", want: 400, run: func(e *testEnv, _ string) (int, []byte) {
			return e.do("POST", "/_api/v1/cache-config/bad!name", e.root, strings.NewReader(`{"keypair":"Generate"}`), nil)
		}},
		nixPutCase("nix PUT unknown compression", "nar/"+fileHash+".nar", func([]byte) []byte { return []byte("definitely not a NAR or a known compression") }, func(*narinfo.NarInfo) {}),
		nixPutCase("nix PUT brotli extension on a NAR that is not brotli", "nar/"+fileHash+".nar.br", func(n []byte) []byte { return n }, func(*narinfo.NarInfo) {}),
		nixPutCase("nix PUT lzop extension", "nar/"+fileHash+".nar.lzo", func(n []byte) []byte { return n }, func(*narinfo.NarInfo) {}),
		nixPutCase("nix PUT xz extension on zstd", "nar/"+fileHash+".nar.xz", zstdOf, func(*narinfo.NarInfo) {}),
		nixPutCase("nix PUT truncated zstd", "nar/"+fileHash+".nar.zst", func(n []byte) []byte { z := zstdOf(n); return z[:len(z)-6] }, func(*narinfo.NarInfo) {}),
		nixPutCase("nix PUT corrupt xz", "nar/"+fileHash+".nar.xz", func([]byte) []byte {
			return append([]byte{0xFD, '7', 'z', 'X', 'Z', 0x00}, bytes.Repeat([]byte{0x42}, 64)...)
		}, func(*narinfo.NarInfo) {}),
		nixPutCase("nix PUT malformed NAR", "nar/"+fileHash+".nar.zst", func([]byte) []byte { return zstdOf(dirNAR("z", "a")) }, func(*narinfo.NarInfo) {}),
		nixPutCase("narinfo NarHash lie", "nar/"+fileHash+".nar.zst", zstdOf, func(ni *narinfo.NarInfo) { ni.NarHash = narHashOf([]byte("lie")) }),
		nixPutCase("narinfo NarSize lie", "nar/"+fileHash+".nar.zst", zstdOf, func(ni *narinfo.NarInfo) { ni.NarSize++ }),
		nixPutCase("narinfo unsupported compression", "nar/"+fileHash+".nar.zst", zstdOf, func(ni *narinfo.NarInfo) { ni.Compression = "lzop" }),
		nixPutCase("narinfo compression mismatch", "nar/"+fileHash+".nar.zst", zstdOf, func(ni *narinfo.NarInfo) { ni.Compression = "xz" }),
		nixPutCase("narinfo without its NAR", "nar/"+fileHash+".nar.zst", zstdOf, func(ni *narinfo.NarInfo) { ni.URL = "nar/" + strings.Repeat("9", 52) + ".nar.zst" }),
		tokenCase("expired token", func(e *testEnv) string {
			return e.mint(token.MintOptions{Subject: "x", Validity: time.Minute, Now: time.Now().Add(-time.Hour), Push: all})
		}),
		tokenCase("not-yet-valid token", func(e *testEnv) string {
			return e.mint(token.MintOptions{Subject: "x", Validity: time.Hour, Now: time.Now().Add(time.Hour), Push: all})
		}),
		tokenCase("token signed with another key", func(e *testEnv) string {
			other, _ := token.NewAuthority(token.Config{HS256Secret: []byte("another-secret-another-secret-xx")})
			c, _ := token.NewClaims(token.MintOptions{Subject: "x", Validity: time.Hour, Now: time.Now(), Push: all})
			s, _ := other.Sign(c)
			return s
		}),
		tokenCase("alg none token", func(*testEnv) string { return unsignedNoneToken() }),
		tokenCase("tampered payload", func(e *testEnv) string {
			parts := strings.Split(e.mint(token.MintOptions{Subject: "x", Validity: time.Hour, Pull: all}), ".")
			payload, _ := json.Marshal(map[string]any{"sub": "x", "https://jwt.attic.rs/v1": map[string]any{"caches": map[string]any{"*": map[string]int{"w": 1}}}})
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		}),
		tokenCase("token for another cache", func(e *testEnv) string {
			return e.mint(token.MintOptions{Subject: "x", Validity: time.Hour, Push: []string{"other"}, Pull: []string{"other"}})
		}),
		tokenCase("no token", func(*testEnv) string { return "" }),
	}
}

func TestBadInput_RejectedAndNothingKept(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	// A committed object whose chunks must survive every sweep.
	keep := fileNAR(strings.Repeat("keep me ", 20000))
	if st, b := e.upload(e.root, uploadInfo("main", "keep-1", keep), keep); st != 200 {
		t.Fatalf("baseline upload: %d %s", st, b)
	}
	baseline := e.sweepChunks()
	if baseline == 0 {
		t.Fatal("baseline has no chunks")
	}
	cases := badCases()
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := fmt.Sprintf("bad-%d", i)
			st, body := tc.run(e, seed)
			if st != tc.want {
				t.Fatalf("status %d, want %d: %s", st, tc.want, body)
			}
			{
				var eb v1.ErrorResponse
				if err := json.NewDecoder(io.LimitReader(bytes.NewReader(body), 1<<20)).Decode(&eb); err != nil || eb.Code != st || eb.Error == "" || eb.Message == "" {
					t.Fatalf("error body %q is not Attic's JSON error", body)
				}
			}
			h, _ := testPath(seed)
			if got := e.missing("main", h); len(got) != 1 {
				t.Fatalf("path %s became visible", h)
			}
			if got := e.sweepChunks(); got != baseline {
				t.Fatalf("%d chunks after sweep, want %d", got, baseline)
			}
		})
	}
}
