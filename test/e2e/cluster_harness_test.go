package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/test/e2e/wan"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// Ports every node uses on its own emulated host.
const (
	httpPort   = 8080
	gossipPort = 7946
	p2pPort    = 4001
)

// cluster is N real garretd processes, each on its own emulated host, with
// every inter-node packet going through the WAN emulator.
type cluster struct {
	t      *testing.T
	net    *wan.Net
	nodes  []*cnode
	jwt    string // shared token signing secret (base64)
	secret string // shared cluster secret
	admin  string // a token with every permission and cluster-admin
}

// cnode is one garretd of a cluster.
type cnode struct {
	c            *cluster
	name, region string
	host         *wan.Host
	dir, config  string
	http         *http.Client
	cmd          *exec.Cmd
	log          *lockedBuffer
	exited       chan struct{}
}

// nodeSpec names a node and its region.
type nodeSpec struct {
	name, region string
	noSync       bool // [cluster] sync = false: the node copies nothing in the background
	minCopies    int  // [cluster] min-copies-before-ack, when not 0
	perRegion    int  // [cluster] copies-per-region, when not 0
}

// requireWAN fails under CI when the emulator cannot run, and skips loudly otherwise.
func requireWAN(t *testing.T) {
	t.Helper()
	if why := wan.Available(); why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the cluster e2e tests: %s", why)
		}
		t.Skipf("!!! SKIPPING: %s !!!", why)
	}
}

// newCluster creates the hosts with WAN latency between regions (interRTT
// round trip; 1 ms inside a region), starts the first node (it bootstraps),
// then the others with join = [first node], and waits until every node is in
// the Raft configuration and ready.
func newCluster(t *testing.T, interRTT time.Duration, specs ...nodeSpec) *cluster {
	t.Helper()
	requireWAN(t)
	n, err := wan.New()
	if err != nil {
		t.Fatal(err)
	}
	jwt := make([]byte, 64)
	_, _ = rand.Read(jwt)
	c := &cluster{t: t, net: n, jwt: base64.StdEncoding.EncodeToString(jwt), secret: "e2e-cluster-secret-" + base64.RawURLEncoding.EncodeToString(jwt[:24])}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("---- log of %s ----\n%s", nd.name, nd.log)
			}
		}
	})
	regions := map[string]bool{}
	for _, s := range specs {
		regions[s.region] = true
	}
	for a := range regions {
		for b := range regions {
			if a == b {
				n.SetLatency(a, b, 500*time.Microsecond)
			} else {
				n.SetLatency(a, b, interRTT/2)
			}
		}
	}
	for i, s := range specs {
		nd := c.add(s, c.secret, i > 0)
		nd.start()
		if i == 0 {
			c.admin = nd.makeToken("--sub", "e2e-admin", "--validity", "1 day", "--pull", "*", "--push", "*",
				"--create-cache", "*", "--configure-cache", "*", "--destroy-cache", "*", "--delete", "*", "--cluster-admin")
		}
	}
	c.waitMembers(len(specs))
	return c
}

// add creates a node's host, config and data dir; join makes it join the
// first node instead of bootstrapping.
func (c *cluster) add(s nodeSpec, secret string, join bool) *cnode {
	c.t.Helper()
	h, err := c.net.AddHost(s.name, s.region)
	if err != nil {
		c.t.Fatal(err)
	}
	dir := c.t.TempDir()
	nd := &cnode{c: c, name: s.name, region: s.region, host: h, dir: dir, config: filepath.Join(dir, "server.toml"), http: h.HTTPClient(), log: &lockedBuffer{}}
	joinTOML := ""
	if join {
		joinTOML = fmt.Sprintf("%q", fmt.Sprintf("%s:%d", c.nodes[0].host.IP, gossipPort))
	}
	ip := h.IP.String()
	cfg := fmt.Sprintf(`listen = "0.0.0.0:%[1]d"
data-dir = %[2]q

[jwt.signing]
token-hs256-secret-base64 = %[3]q

[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144

[cluster]
node-name = %[4]q
region = %[5]q
secret = %[6]q
gossip-listen = "%[7]s:%[8]d"
p2p-listen = "/ip4/%[7]s/tcp/%[9]d"
api-url = "http://%[7]s:%[1]d"
join = [%[10]s]
sync = %[11]t
`, httpPort, filepath.Join(dir, "data"), c.jwt, s.name, s.region, secret, ip, gossipPort, p2pPort, joinTOML, !s.noSync)
	if s.minCopies != 0 {
		cfg += fmt.Sprintf("min-copies-before-ack = %d\n", s.minCopies)
	}
	if s.perRegion != 0 {
		cfg += fmt.Sprintf("copies-per-region = %d\n", s.perRegion)
	}
	if err := os.WriteFile(nd.config, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.nodes = append(c.nodes, nd)
	return nd
}

// leaderAndFollowers returns the current leader and the other nodes.
func (c *cluster) leaderAndFollowers() (leader *cnode, followers []*cnode) {
	leader = c.node(c.nodes[len(c.nodes)-1].leader())
	for _, nd := range c.nodes {
		if nd != leader {
			followers = append(followers, nd)
		}
	}
	return leader, followers
}

// node returns the node called name.
func (c *cluster) node(name string) *cnode {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// url is the node's API as seen from its own host.
func (nd *cnode) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", httpPort) }

// start runs garretd on the node's host and waits for its HTTP listener.
func (nd *cnode) start() {
	t := nd.c.t
	t.Helper()
	nd.cmd = nd.host.Command(context.Background(), garretd, "-f", nd.config)
	nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
	nd.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(nd.dir, "xdg"))
	fmt.Fprintf(nd.log, "==== start %s ====\n", time.Now().Format(time.RFC3339Nano))
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	nd.exited = exited
	cmd := nd.cmd
	go func() { _ = cmd.Wait(); close(exited) }()
	eventually.Within(t, 60*time.Second, nd.name+" listening", func() bool {
		select {
		case <-exited:
			t.Fatalf("garretd %s exited at start; log:\n%s", nd.name, nd.log)
		default:
		}
		resp, err := nd.get("healthz", "")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// stop sends SIGTERM (a graceful leave) and waits for the exit.
func (nd *cnode) stop() { nd.signal(syscall.SIGTERM, 40*time.Second) }

// kill sends SIGKILL: the node crashes, leaving its data dir as it was.
func (nd *cnode) kill() { nd.signal(syscall.SIGKILL, 10*time.Second) }

func (nd *cnode) signal(sig syscall.Signal, wait time.Duration) {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	_ = nd.cmd.Process.Signal(sig)
	select {
	case <-nd.exited:
	case <-time.After(wait):
		_ = nd.cmd.Process.Kill()
		<-nd.exited
		nd.c.t.Errorf("garretd %s did not exit on %v", nd.name, sig)
	}
	fmt.Fprintf(nd.log, "==== %v at %s ====\n", sig, time.Now().Format(time.RFC3339Nano))
	nd.cmd = nil
}

// makeToken runs garretd make-token with the node's config.
func (nd *cnode) makeToken(args ...string) string {
	return strings.TrimSpace(run(nd.c.t, nil, garretd, append([]string{"make-token", "-f", nd.config}, args...)...))
}

// do sends a request to the node from its own host.
func (nd *cnode) do(method, path, tok string, body io.Reader, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(method, nd.url()+path, body)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return nd.http.Do(req)
}

func (nd *cnode) get(path, tok string) (*http.Response, error) {
	return nd.do("GET", path, tok, nil, nil)
}

// status is the node's GET /_api/v1/cluster.
func (nd *cnode) status() (v1.ClusterStatus, error) {
	var st v1.ClusterStatus
	resp, err := nd.get("_api/v1/cluster", nd.c.admin)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return st, fmt.Errorf("cluster status: %d %s", resp.StatusCode, b)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leader is the node that n believes leads ("" if none or unreachable).
func (nd *cnode) leader() string {
	st, err := nd.status()
	if err != nil || st.Leader == "" {
		return ""
	}
	for _, m := range st.Nodes {
		if m.PeerID == st.Leader {
			return m.Name
		}
	}
	return st.Leader
}

// ready reports /readyz.
func (nd *cnode) ready() bool {
	resp, err := nd.get("readyz", "")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// waitMembers waits until a running node's Raft configuration has n
// members with a role and every running node is ready.
func (c *cluster) waitMembers(n int) {
	c.t.Helper()
	eventually.Within(c.t, 90*time.Second, fmt.Sprintf("%d nodes in Raft and ready", n), func() bool {
		for _, nd := range c.nodes {
			if nd.cmd == nil {
				continue
			}
			if !nd.ready() {
				return false
			}
		}
		st, err := c.nodes[0].status()
		if err != nil {
			return false
		}
		inRaft := 0
		for _, m := range st.Nodes {
			if m.Role == "voter" || m.Role == "nonvoter" {
				inRaft++
			}
		}
		return inRaft == n
	})
}

// createCacheOn creates a public cache through the node's Attic API.
func (nd *cnode) createCache(name string) {
	t := nd.c.t
	t.Helper()
	body := `{"keypair":"Generate","is_public":true,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`
	resp, err := nd.do("POST", "_api/v1/cache-config/"+name, nd.c.admin, strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create cache %s on %s: %d %s", name, nd.name, resp.StatusCode, b)
	}
	// The node that took the write has it; the others apply it moments later.
	for _, other := range nd.c.nodes {
		if other.cmd == nil {
			continue
		}
		eventually.Within(t, 10*time.Second, "cache "+name+" on "+other.name, func() bool {
			resp, err := other.get(name+"/nix-cache-info", "")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
}

// synthPath is a store path with a one-file NAR, made up for pushes that do
// not need nix.
type synthPath struct {
	storePath string
	hash      string // the 32-character store path hash
	nar       []byte
}

func newSynthPath(name string, size int) synthPath {
	var h [20]byte
	_, _ = rand.Read(h[:])
	content := make([]byte, size)
	_, _ = rand.Read(content[:size/2]) // half random, half zeros: compressible, and unique
	hash := nixbase32.EncodeToString(h[:])
	return synthPath{storePath: "/nix/store/" + hash + "-" + name, hash: hash, nar: regularNAR(content)}
}

// regularNAR is the NAR of a single regular file.
func regularNAR(content []byte) []byte {
	var b bytes.Buffer
	str := func(s []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.Write(s)
		b.Write(make([]byte, (8-len(s)%8)%8))
	}
	for _, s := range []string{"nix-archive-1", "(", "type", "regular", "contents"} {
		str([]byte(s))
	}
	str(content)
	str([]byte(")"))
	return b.Bytes()
}

// push uploads p with Attic's upload-path; it returns the HTTP status and body.
func (nd *cnode) push(cache string, p synthPath) (int, string, error) {
	sum := sha256.Sum256(p.nar)
	info := v1.UploadPathNarInfo{Cache: cache, StorePathHash: p.hash, StorePath: p.storePath, References: []string{},
		NarHash: nixid.NarHash(sum).String(), NarSize: int64(len(p.nar))}
	b, _ := json.Marshal(info)
	resp, err := nd.do("PUT", "_api/v1/upload-path", nd.c.admin, bytes.NewReader(p.nar),
		map[string]string{v1.HeaderNarInfo: string(b), "Content-Type": "application/octet-stream"})
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), nil
}

// narinfoStatus is the status of GET /<cache>/<hash>.narinfo on the node.
func (nd *cnode) narinfoStatus(cache, hash string) int {
	resp, err := nd.get(cache+"/"+hash+".narinfo", "")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// narinfo returns the narinfo text (failing the test unless it is a 200).
func (nd *cnode) narinfo(cache, hash string) string {
	t := nd.c.t
	t.Helper()
	resp, err := nd.get(cache+"/"+hash+".narinfo", "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("narinfo %s on %s: %d %s", hash, nd.name, resp.StatusCode, b)
	}
	return string(b)
}

// term is the Raft term the node reports.
func (nd *cnode) term() uint64 {
	st, err := nd.status()
	if err != nil {
		nd.c.t.Fatalf("status of %s: %v", nd.name, err)
	}
	return st.Term
}
