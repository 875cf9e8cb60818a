package node

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/klauspost/compress/zstd"
)

// crashChildEnv names the config a child process of this test binary runs a
// node from (see TestMain); crashGrace is its sweep grace.
const (
	crashChildEnv = "GARRET_TEST_CRASH_NODE_CONFIG"
	crashGrace    = time.Second
)

// TestMain runs the test binary as a node when crashChildEnv is set, so the
// crash test can kill a real process (SIGKILL) in the middle of its work.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(runCrashChild(path))
	}
	os.Exit(m.Run())
}

func runCrashChild(path string) int {
	cfg, err := serverconfig.Load(path, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := New(Config{Server: cfg, Logger: log, FastTimings: true, SweepGrace: crashGrace})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("URL %s\n", n.URL())
	select {} // until killed
}

// crashNode is one run of the child node.
type crashNode struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
	auth *token.Authority
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startCrashNode(t *testing.T, cfgPath string, auth *token.Authority) *crashNode {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), crashChildEnv+"="+cfgPath)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
				urls <- u
			}
		}
	}()
	n := &crashNode{t: t, cmd: cmd, logs: logs, auth: auth}
	t.Cleanup(func() { n.kill() })
	select {
	case n.url = <-urls:
	case <-time.After(60 * time.Second):
		n.kill()
		t.Fatalf("the node did not start:\n%s", logs.String())
	}
	return n
}

// kill sends SIGKILL and reaps the process: no shutdown code runs.
func (n *crashNode) kill() {
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.cmd.Wait()
}

// stop shuts the node down cleanly.
func (n *crashNode) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		n.kill()
	}
}

func (n *crashNode) request(method, path string, body io.Reader, hdr map[string]string) (int, []byte, error) {
	c, err := token.NewClaims(token.MintOptions{Subject: "admin", Validity: time.Hour, Now: time.Now(), ClusterAdmin: true,
		Pull: []string{"*"}, Push: []string{"*"}, Delete: []string{"*"}, CreateCache: []string{"*"}})
	if err != nil {
		return 0, nil, err
	}
	tok, err := n.auth.Sign(c)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(n.url, "/")+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (n *crashNode) must(method, path string, body io.Reader, hdr map[string]string) []byte {
	n.t.Helper()
	st, b, err := n.request(method, path, body, hdr)
	if err != nil || st != 200 {
		n.t.Fatalf("%s %s: %d %s %v", method, path, st, b, err)
	}
	return b
}

// crashPath is a NAR of size random bytes under a fresh store path hash.
type crashPath struct {
	hash string
	nar  []byte
}

var crashSeq int

func newCrashPath(size int) crashPath {
	crashSeq++
	content := make([]byte, size)
	_, _ = rand.Read(content)
	h := []byte(fmt.Sprintf("%032d", crashSeq))
	for i, c := range h { // digits are nixbase32; 'e','o','u','t' are not
		h[i] = "0123456789abcdfg"[c-'0']
	}
	return crashPath{hash: string(h), nar: fileNAR(content)}
}

func (p crashPath) info() string {
	j, _ := json.Marshal(v1.UploadPathNarInfo{Cache: "c", StorePathHash: p.hash, StorePath: "/nix/store/" + p.hash + "-x",
		References: []string{}, Sigs: []string{}, NarHash: nixid.NarHash(sha256.Sum256(p.nar)).Hex(), NarSize: int64(len(p.nar))})
	return string(j)
}

func (n *crashNode) push(p crashPath) {
	n.t.Helper()
	n.must("PUT", "/_api/v1/upload-path", bytes.NewReader(p.nar), map[string]string{v1.HeaderNarInfo: p.info()})
}

func (n *crashNode) delete(ps []crashPath) {
	n.t.Helper()
	var hs []string
	for _, p := range ps {
		hs = append(hs, p.hash)
	}
	b, _ := json.Marshal(v1.DeletePathsRequest{Cache: "c", StorePathHashes: hs})
	n.must("POST", "/_api/v1/delete-paths", bytes.NewReader(b), nil)
}

func (n *crashNode) gc() v1.ClusterGCResponse {
	n.t.Helper()
	var res v1.ClusterGCResponse
	if err := json.Unmarshal(n.must("POST", "/_api/v1/cluster/gc", nil, nil), &res); err != nil {
		n.t.Fatal(err)
	}
	return res
}

var zstdDecoder, _ = zstd.NewReader(nil)

// duBytes is `du -s -B1 dir`: the disk space the data dir really takes
// (blocks, not apparent sizes: raft-wal preallocates its segment files).
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCrash_MidUploadAndMidSweep: a node process is killed (SIGKILL) in
// the middle of uploads, and then in the middle of garbage collection
// passes, and restarted each time. Afterwards one pass brings the store to
// exactly the live set: every manifest in the store is one the catalog
// references, every chunk is one of theirs, no frame bytes more; every live
// path reads back byte for byte; and a second pass finds nothing (no state
// left for a pass to loop on, as Attic's GC loops on missing files). The
// data dir's `du` shows the deleted paths' space come back.
func TestCrash_MidUploadAndMidSweep(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	secret := []byte("node-test-secret-node-test-secret")
	cfgPath := filepath.Join(t.TempDir(), "server.toml")
	text := "listen = \"127.0.0.1:0\"\ndata-dir = \"" + dataDir + "\"\n[garbage-collection]\ninterval = \"0\"\n" +
		"[jwt.signing]\ntoken-hs256-secret-base64 = \"" + base64.StdEncoding.EncodeToString(secret) + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := serverconfig.Load(cfgPath, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := TokenAuthority(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := startCrashNode(t, cfgPath, auth)
	n.must("POST", "/_api/v1/cache-config/c", strings.NewReader(`{"keypair":"Generate","is_public":false,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`), nil)
	var live, doomed []crashPath
	for range 12 {
		p := newCrashPath(1 << 20)
		n.push(p)
		live = append(live, p)
		q := newCrashPath(1 << 20)
		n.push(q)
		doomed = append(doomed, q)
	}
	duBefore := duBytes(t, dataDir)

	// 1. Killed in the middle of four uploads: half of each body sent.
	var wg sync.WaitGroup
	var answered sync.Map
	for i := range 4 {
		p := newCrashPath(2 << 20)
		pr, pw := io.Pipe()
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = pw.Write(p.nar[:len(p.nar)/2])
			time.Sleep(time.Hour) // the rest never comes; the pipe is closed below
		}()
		go func() {
			defer wg.Done()
			st, _, err := n.request("PUT", "/_api/v1/upload-path", pr, map[string]string{v1.HeaderNarInfo: p.info()})
			if err == nil {
				answered.Store(i, st)
			}
			_ = pr.Close()
		}()
	}
	time.Sleep(500 * time.Millisecond) // the halves are ingested
	n.kill()
	answered.Range(func(k, v any) bool { t.Fatalf("upload %v was answered (%v) before the kill", k, v); return false })
	n = startCrashNode(t, cfgPath, auth)

	// 2. Killed in the middle of passes: garbage made, old enough to go,
	// a pass asked for, the process killed after a few milliseconds.
	n.delete(doomed)
	midPass := 0
	for _, delay := range []time.Duration{0, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond} {
		g := []crashPath{newCrashPath(1 << 20), newCrashPath(1 << 20)}
		for _, p := range g {
			n.push(p)
		}
		n.delete(g)
		time.Sleep(crashGrace + 100*time.Millisecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = n.request("POST", "/_api/v1/cluster/gc", nil, nil)
		}()
		time.Sleep(delay)
		passes := strings.Count(n.logs.String(), `msg="gc pass"`)
		n.kill()
		<-done
		if passes == 0 {
			midPass++
		}
		n = startCrashNode(t, cfgPath, auth)
	}
	if midPass == 0 {
		t.Fatal("every pass ended before its kill: nothing was killed mid-pass")
	}
	t.Logf("%d of 5 kills landed before the pass ended", midPass)

	// 3. One pass after the grace brings the store to the live set.
	time.Sleep(crashGrace + 100*time.Millisecond)
	res := n.gc()
	t.Logf("pass after the crashes: %+v", res)
	if again := n.gc(); again.ManifestsDeleted+again.ChunksDeleted != 0 {
		t.Fatalf("a second pass still found garbage: %+v", again)
	}
	for _, p := range live {
		// The NAR is served as its stored zstd frames.
		b, err := zstdDecoder.DecodeAll(n.must("GET", "/c/nar/"+p.hash+".nar", nil, nil), nil)
		if err != nil || !bytes.Equal(b, p.nar) {
			t.Fatalf("live path %s reads back %d bytes (%v), not its NAR of %d", p.hash, len(b), err, len(p.nar))
		}
	}
	for _, p := range doomed[:2] {
		if st, _, _ := n.request("GET", "/c/nar/"+p.hash+".nar", nil, nil); st != 404 {
			t.Fatalf("deleted path %s: %d", p.hash, st)
		}
	}
	n.stop()
	duAfter := duBytes(t, dataDir)
	t.Logf("du -s -B1 %s: %d bytes with the %d live and %d deleted paths; %d after the crashes and the pass (%.1f MiB given back)",
		dataDir, duBefore, len(live), len(doomed), duAfter, float64(duBefore-duAfter)/(1<<20))
	if freed := duBefore - duAfter; freed < int64(len(doomed))*(1<<20)*8/10 {
		t.Errorf("du shows %d bytes given back, want most of the %d MiB deleted", freed, len(doomed))
	}
	if out, err := exec.Command("du", "-a", "-B1", "--max-depth=3", dataDir).Output(); err == nil && testing.Verbose() {
		t.Logf("%s", out)
	}
	checkLiveSet(t, cfg, len(live))
}

// checkLiveSet opens the stopped node's store and catalog: the manifests
// are exactly those the catalog references, the chunks exactly theirs.
func checkLiveSet(t *testing.T, sc *serverconfig.Config, paths int) {
	t.Helper()
	p, err := newPlan(Config{Server: sc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	store, err := chunkstore.Open(p.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ms, err := catalog.OpenManifests(p.catalog.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	manifests := 0
	chunks := map[chunkstore.ChunkID]struct{}{}
	var frameBytes int64
	err = ms.ForEach(func(id chunkstore.ManifestID) error {
		manifests++
		m, err := store.Manifest(id)
		if err != nil {
			return fmt.Errorf("live manifest %s: %w", id, err)
		}
		for _, c := range m.Chunks {
			if _, ok := chunks[c.ID]; ok {
				continue
			}
			chunks[c.ID] = struct{}{}
			size, ok, err := store.FrameSize(c.ID)
			if err != nil || !ok {
				return fmt.Errorf("chunk %s of live manifest %s: present %v, %v", c.ID, id, ok, err)
			}
			frameBytes += int64(size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if manifests != paths || st.Manifests != int64(manifests) || st.Chunks != int64(len(chunks)) || st.StoredBytes != frameBytes {
		t.Fatalf("store: %d manifests, %d chunks, %d frame bytes; the live set: %d manifests (%d paths), %d chunks, %d bytes",
			st.Manifests, st.Chunks, st.StoredBytes, manifests, paths, len(chunks), frameBytes)
	}
}
