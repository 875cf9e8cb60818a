package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/p2p"
)

// testEnv is one in-process node: real chunk store, real Raft catalog over a
// libp2p transport with short timeouts, and the API behind httptest.
type testEnv struct {
	t     testing.TB
	srv   *httptest.Server
	cat   *catalog.Catalog
	store *chunkstore.Store
	auth  *token.Authority
	api   *Server
	root  string // token with every permission on "*"
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvWith(t, DefaultConfig())
}

// newTestEnvWith is newTestEnv with an API config of the test's choosing.
func newTestEnvWith(t testing.TB, ac Config) *testEnv {
	t.Helper()
	return newTestEnvDeps(t, ac, Deps{})
}

// newTestEnvDeps is newTestEnvWith with the optional API dependencies
// (Cluster, DiskFloor, Copies) of the test's choosing; the rest are the env's own.
func newTestEnvDeps(t testing.TB, ac Config, deps Deps) *testEnv {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cs := chunkstore.DefaultConfig()
	cs.Dir = filepath.Join(dir, "chunks")
	store, err := chunkstore.Open(cs, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	key, id, err := p2p.LoadOrCreateIdentity(filepath.Join(dir, "p2p.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.NewHost(p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, PrivateKey: key, PSK: bytes.Repeat([]byte{0x5a}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	tr, err := p2p.NewRaftTransport(h, log)
	if err != nil {
		t.Fatal(err)
	}
	cc := catalog.TestConfig(filepath.Join(dir, "catalog"))
	cc.NodeID, cc.Bootstrap = id.String(), true
	cat, err := catalog.Open(cc, catalog.Deps{Transport: tr, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cat.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	auth, err := token.NewAuthority(token.Config{HS256Secret: []byte("test-secret-test-secret-test-secret!"), Leeway: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deps.Catalog, deps.Store, deps.Tokens, deps.Log = cat, store, auth, log
	s := New(ac, deps)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	e := &testEnv{t: t, srv: srv, cat: cat, store: store, auth: auth, api: s}
	all := []string{"*"}
	e.root = e.mint(token.MintOptions{Subject: "root", Validity: time.Hour, Pull: all, Push: all, Delete: all,
		CreateCache: all, ConfigureCache: all, ConfigureCacheRetention: all, DestroyCache: all})
	return e
}

func (e *testEnv) mint(o token.MintOptions) string {
	e.t.Helper()
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	c, err := token.NewClaims(o)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := e.auth.Sign(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// do sends a request and returns status and body.
func (e *testEnv) do(method, path, tok string, body io.Reader, hdr map[string]string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *testEnv) createCache(name string, public bool) {
	e.t.Helper()
	body := `{"keypair":"Generate","is_public":` + map[bool]string{true: "true", false: "false"}[public] +
		`,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":["cache.nixos.org-1"]}`
	if st, b := e.do("POST", "/_api/v1/cache-config/"+name, e.root, strings.NewReader(body), nil); st != 200 {
		e.t.Fatalf("create cache %s: %d %s", name, st, b)
	}
}

// upload pushes a NAR through Attic's upload-path with the header variant.
func (e *testEnv) upload(tok string, info v1.UploadPathNarInfo, body []byte) (int, []byte) {
	e.t.Helper()
	j, _ := json.Marshal(info)
	return e.do("PUT", "/_api/v1/upload-path", tok, bytes.NewReader(body), map[string]string{v1.HeaderNarInfo: string(j)})
}

func (e *testEnv) missing(cache string, hashes ...string) []string {
	e.t.Helper()
	j, _ := json.Marshal(v1.GetMissingPathsRequest{Cache: cache, StorePathHashes: hashes})
	st, b := e.do("POST", "/_api/v1/get-missing-paths", e.root, bytes.NewReader(j), nil)
	if st != 200 {
		e.t.Fatalf("get-missing-paths: %d %s", st, b)
	}
	var out v1.GetMissingPathsResponse
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.MissingPaths
}

// sweepChunks runs a zero-grace sweep and returns how many chunks remain.
func (e *testEnv) sweepChunks() int64 {
	e.t.Helper()
	live := map[chunkstore.ManifestID]bool{}
	if err := e.cat.ForEachManifest(func(id chunkstore.ManifestID) error { live[id] = true; return nil }); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Sweep(context.Background(), func(id chunkstore.ManifestID) bool { return live[id] }, 0); err != nil {
		e.t.Fatal(err)
	}
	st, err := e.store.Stats()
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Chunks
}

// narEnc writes raw NAR tokens, so tests can build malformed archives too.
type narEnc struct{ bytes.Buffer }

func (n *narEnc) str(s string) *narEnc {
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
	n.Write(l[:])
	n.WriteString(s)
	if pad := (8 - len(s)%8) % 8; pad > 0 {
		n.Write(make([]byte, pad))
	}
	return n
}

func (n *narEnc) toks(ts ...string) *narEnc {
	for _, t := range ts {
		n.str(t)
	}
	return n
}

// fileNAR is a NAR of one regular file.
func fileNAR(content string) []byte {
	var n narEnc
	n.toks("nix-archive-1", "(", "type", "regular", "contents", content, ")")
	return n.Bytes()
}

// dirNAR is a NAR of a directory with the given entry names (in the order
// given, so tests can make unsorted ones), each a small file.
func dirNAR(names ...string) []byte {
	var n narEnc
	n.toks("nix-archive-1", "(", "type", "directory")
	for _, name := range names {
		n.toks("entry", "(", "name", name, "node", "(", "type", "regular", "contents", "x"+name, ")", ")")
	}
	n.toks(")")
	return n.Bytes()
}

func narHashOf(b []byte) nixid.NarHash { return nixid.NarHash(sha256.Sum256(b)) }

// testPath returns a store path with a valid hash derived from seed.
func testPath(seed string) (hash, path string) {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	sum := sha256.Sum256([]byte(seed))
	var b [32]byte
	for i := range b {
		b[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(b[:]), "/nix/store/" + string(b[:]) + "-" + seed
}

func uploadInfo(cache, seed string, nar []byte) v1.UploadPathNarInfo {
	h, p := testPath(seed)
	return v1.UploadPathNarInfo{Cache: cache, StorePathHash: h, StorePath: p, References: []string{},
		Sigs: []string{}, NarHash: narHashOf(nar).Hex(), NarSize: int64(len(nar))}
}
