package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/nixid"
)

// run executes a command on the node's host (its own network namespace).
func (nd *cnode) run(env []string, name string, args ...string) string {
	t := nd.c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return execute(t, nd.host.Command(ctx, name, args...), env)
}

// TestCluster_NixCopyToFollowerAcrossRegions is the cluster issue's "done
// when": 3 nodes in 2 regions (eu: 1, us: 2) with 150 ms RTT between them,
// real `nix copy --to` into the us follower, the narinfo read from every node,
// substitution from the eu node (its chunks cross the WAN), `garret cluster
// status`, and no election for the whole run.
func TestCluster_NixCopyToFollowerAcrossRegions(t *testing.T) {
	requireNix(t)
	t.Parallel()
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	eu, us1, us2 := c.node("eu-1"), c.node("us-1"), c.node("us-2")
	if l := us1.leader(); l != "eu-1" {
		t.Fatalf("leader is %q; the bootstrapping eu-1 should lead", l)
	}
	healthyFrom, term := time.Now(), eu.term()

	us1.createCache("wan") // a follower's write, forwarded to the eu leader
	env := nixEnv(t, us1.url(), c.admin)
	top, dep := buildClosure(t, hostNix, env)
	start := time.Now()
	us1.run(env, "nix", "copy", "--to", us1.url()+"upload/wan?compression=zstd", top)
	t.Logf("nix copy of a 2-path closure to the us follower (leader in eu, 150 ms RTT): %v", time.Since(start).Round(time.Millisecond))

	// The narinfo on every node, each read from the node's own host.
	for _, nd := range c.nodes {
		for _, p := range []string{top, dep} {
			hash := strings.TrimPrefix(p, "/nix/store/")[:32]
			eventually.Within(t, 10*time.Second, "narinfo on "+nd.name, func() bool { return nd.narinfoStatus("wan", hash) == 200 })
			if ni := nd.narinfo("wan", hash); !strings.Contains(ni, "StorePath: "+p) {
				t.Errorf("narinfo of %s on %s:\n%s", p, nd.name, ni)
			}
		}
	}
	// Substitution from eu-1 and us-2: their NARs come over libp2p from us-1.
	key := cachePublicKey(t, us1)
	for _, nd := range []*cnode{eu, us2} {
		start := time.Now()
		substitute(t, nd.run, nixEnv(t, nd.url(), c.admin), nd.url()+"wan", key, top, dep)
		t.Logf("substitute from %s (chunks fetched from peers): %v", nd.name, time.Since(start).Round(time.Millisecond))
	}

	// garret cluster status, as an operator on us-2 would run it.
	home := t.TempDir()
	cli := []string{"XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "HOME=" + home}
	us2.run(cli, garret, "login", "wan", strings.TrimSuffix(us2.url(), "/"), c.admin)
	out := us2.run(cli, garret, "cluster", "status")
	t.Logf("garret cluster status on us-2:\n%s", out)
	for _, want := range []string{"eu-1", "us-1", "us-2", "eu ", "us ", "voter"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster status lacks %q:\n%s", want, out)
		}
	}

	// garret use on a machine in the us region (us-2's host), logged in to
	// the eu node: it writes the us nodes first.
	conf := filepath.Join(home, "nix.conf")
	us2.run(cli, garret, "login", "eu", fmt.Sprintf("http://%s:%d", eu.host.IP, httpPort), c.admin)
	out = us2.run(append(cli, "NIX_USER_CONF_FILES="+conf), garret, "use", "eu:wan")
	t.Logf("garret use on us-2's host:\n%s", out)
	written, _ := os.ReadFile(conf)
	var subs []string
	for _, line := range strings.Split(string(written), "\n") {
		if v, ok := strings.CutPrefix(line, "substituters = "); ok {
			subs = strings.Fields(v)
		}
	}
	host := func(nd *cnode) string { return fmt.Sprintf("http://%s:%d/wan?priority=", nd.host.IP, httpPort) }
	if len(subs) < 3 || !strings.HasPrefix(subs[2], host(eu)) || strings.HasPrefix(subs[0], host(eu)) || strings.HasPrefix(subs[1], host(eu)) {
		t.Errorf("garret use near the us nodes wrote substituters %v; want both us nodes before %s", subs, host(eu))
	}

	// Keep the healthy cluster busy for a while: pushes to us-2 every 250 ms.
	soak := time.Now()
	for i := 0; time.Since(soak) < 25*time.Second; i++ {
		if _, err := pushUntilAcked(us2, "wan", newSynthPath(fmt.Sprintf("soak-%d", i), 8<<10), time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Gossip measured the round trips: at least the 150 ms across the ocean
	// (a loaded machine adds to a probe's time, never takes away), and the
	// neighbour in the same region closer than that.
	st, err := us2.status()
	if err != nil {
		t.Fatal(err)
	}
	rtt := map[string]float64{}
	for _, m := range st.Nodes {
		rtt[m.Name] = m.RTTMs
	}
	t.Logf("RTTs measured by gossip from us-2: eu-1 %.1f ms, us-1 %.1f ms", rtt["eu-1"], rtt["us-1"])
	if rtt["eu-1"] < 140 {
		t.Errorf("us-2 → eu-1 RTT %.1f ms, want ≥ ~150", rtt["eu-1"])
	}
	if rtt["us-1"] <= 0 || rtt["us-1"] >= rtt["eu-1"] {
		t.Errorf("us-2 → us-1 RTT %.1f ms, want measured and below the %.1f ms to eu-1", rtt["us-1"], rtt["eu-1"])
	}

	// WAN timings: the healthy cluster never held an election.
	for _, nd := range c.nodes {
		if got := nd.term(); got != term {
			t.Errorf("%s is in term %d, the run started in term %d: an election happened at 150 ms RTT", nd.name, got, term)
		}
	}
	t.Logf("no election in %v of a healthy cluster at 150 ms RTT (term %d throughout)", time.Since(healthyFrom).Round(time.Second), term)
}

// cachePublicKey reads a cache's public key through the node's API.
func cachePublicKey(t *testing.T, nd *cnode) string {
	t.Helper()
	resp, err := nd.get("_api/v1/cache-config/wan", nd.c.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	i := strings.Index(string(b), `"public_key":"`)
	if i < 0 {
		t.Fatalf("cache-config: %s", b)
	}
	rest := string(b)[i+len(`"public_key":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// pushUntilAcked pushes p to nd, retrying 5xx answers and network errors
// (what `garret push` does) until it is acknowledged or the deadline passes.
func pushUntilAcked(nd *cnode, cache string, p synthPath, deadline time.Time) (attempts int, err error) {
	for {
		attempts++
		status, body, err := nd.push(cache, p)
		if err == nil && status == 200 {
			return attempts, nil
		}
		if err == nil && status < 500 {
			return attempts, fmt.Errorf("push %s to %s: %d %s", p.hash, nd.name, status, body)
		}
		if time.Now().After(deadline) {
			return attempts, fmt.Errorf("push %s to %s: still failing at the deadline: %d %s %v", p.hash, nd.name, status, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCluster_KillLeaderDuringPushes: kill -9 the leader while 50 pushes run
// on the followers. Every acknowledged path is in the catalog of every
// surviving node, a new leader is elected within seconds, the pushes resume,
// and the killed node, restarted, catches up.
func TestCluster_KillLeaderDuringPushes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	leader, followers := c.leaderAndFollowers()
	followers[0].createCache("ha")

	const n = 50
	paths := make([]synthPath, n)
	for i := range paths {
		paths[i] = newSynthPath(fmt.Sprintf("ha-%d", i), 96<<10)
	}
	var mu sync.Mutex
	acked := map[int]bool{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Minute)
	errs := make(chan error, n)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i >= n/2 { // the second half starts once the leader is dead (below)
				time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			}
			if _, err := pushUntilAcked(followers[i%2], "ha", paths[i], deadline); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			acked[i] = true
			mu.Unlock()
		}()
	}
	eventually.Within(t, time.Minute, "10 acknowledged pushes", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 10 })
	mu.Lock()
	ackedBeforeKill := len(acked)
	mu.Unlock()
	killed := time.Now()
	leader.kill()

	var newLeader string
	eventually.Within(t, 30*time.Second, "a new leader", func() bool {
		newLeader = followers[0].leader()
		return newLeader != "" && newLeader != leader.name && followers[1].leader() == newLeader
	})
	election := time.Since(killed)
	t.Logf("leader %s killed after %d acknowledged pushes; %s leads %v later", leader.name, ackedBeforeKill, newLeader, election.Round(time.Millisecond))
	if election > 15*time.Second {
		t.Errorf("a new leader took %v", election)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(acked) != n {
		t.Fatalf("%d of %d pushes acknowledged", len(acked), n)
	}
	// The node that acknowledged a path has it at once; the other within moments.
	for i := range acked {
		if s := followers[i%2].narinfoStatus("ha", paths[i].hash); s != 200 {
			t.Errorf("acknowledged path %d: narinfo on %s, which acknowledged it, is %d", i, followers[i%2].name, s)
		}
	}
	for _, nd := range followers {
		eventually.Within(t, 10*time.Second, "every acknowledged path on "+nd.name, func() bool {
			for i := range acked {
				if nd.narinfoStatus("ha", paths[i].hash) != 200 {
					return false
				}
			}
			return true
		})
	}

	// The killed node restarts with its data dir and catches up.
	leader.start()
	eventually.Within(t, 60*time.Second, leader.name+" caught up", func() bool {
		if !leader.ready() {
			return false
		}
		for i := range paths {
			if leader.narinfoStatus("ha", paths[i].hash) != 200 {
				return false
			}
		}
		return true
	})
	resp, err := leader.get("ha/nar/"+paths[n-1].hash+".nar", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) == 0 {
		t.Errorf("NAR from the restarted %s: %d, %d bytes", leader.name, resp.StatusCode, len(b))
	}
}

// TestCluster_PartitionRegion cuts the eu region (holding the leader) off.
// Reads keep working on both sides; the minority answers writes with a 503
// naming the cause, quickly; the majority elects a leader and takes writes;
// after the heal the eu node has everything.
func TestCluster_PartitionRegion(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	eu, us1, us2 := c.node("eu-1"), c.node("us-1"), c.node("us-2")
	eu.createCache("part")
	before := newSynthPath("before", 80<<10)
	if _, err := pushUntilAcked(eu, "part", before, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 10*time.Second, "replicated before the cut", func() bool { return us2.narinfoStatus("part", before.hash) == 200 })

	c.net.Isolate("eu")
	cut := time.Now()

	// Minority: 503 with the cause, and fast.
	var lastBody string
	eventually.Within(t, 20*time.Second, "eu-1 refusing writes", func() bool {
		start := time.Now()
		status, body, err := eu.push("part", newSynthPath("minority", 4<<10))
		if took := time.Since(start); took > 6*time.Second {
			t.Errorf("a push on the minority side took %v to fail", took)
		}
		lastBody = body
		return err == nil && status == 503
	})
	t.Logf("eu-1 answers 503 %v after the cut: %s", time.Since(cut).Round(time.Millisecond), lastBody)
	if !strings.Contains(strings.ToLower(lastBody), "leader") {
		t.Errorf("the minority's 503 does not name the cause: %s", lastBody)
	}
	start := time.Now()
	status, body, _ := eu.push("part", newSynthPath("minority", 4<<10))
	if status != 503 || time.Since(start) > 3*time.Second {
		t.Errorf("once partitioned, a push on eu-1: %d after %v: %s", status, time.Since(start), body)
	}
	// Real Nix on the minority side fails, promptly: every 503 is answered
	// before the narinfo's body is read (Nix's retries of a PUT send none).
	env := nixEnv(t, eu.url(), c.admin)
	top, _ := buildClosure(t, hostNix, env)
	start = time.Now()
	out, err := eu.nixOn(hostNix, env, "nix", "copy", "--to", eu.url()+"upload/part?compression=zstd", top)
	t.Logf("nix copy on the minority side failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(out, "503") {
		t.Errorf("nix copy on the minority side: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("nix copy on the minority side took %v to fail", took)
	}
	// Reads on both sides.
	for _, nd := range c.nodes {
		if s := nd.narinfoStatus("part", before.hash); s != 200 {
			t.Errorf("narinfo on %s during the partition: %d", nd.name, s)
		}
	}
	// Majority: a new leader, and writes.
	during := newSynthPath("during", 80<<10)
	if _, err := pushUntilAcked(us1, "part", during, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	t.Logf("the us majority took a write %v after the cut (leader now %s)", time.Since(cut).Round(time.Millisecond), us1.leader())
	if s := eu.narinfoStatus("part", during.hash); s != 404 {
		t.Errorf("eu-1 saw a write made during the partition: %d", s)
	}

	// Heal: eu-1 converges, and can serve the NAR (fetched from a us node).
	c.net.Rejoin("eu")
	healed := time.Now()
	eventually.Within(t, 60*time.Second, "eu-1 converged", func() bool {
		return eu.ready() && eu.narinfoStatus("part", during.hash) == 200 && eu.leader() == us1.leader()
	})
	t.Logf("eu-1 converged %v after the heal", time.Since(healed).Round(time.Millisecond))
	resp, err := eu.get("part/nar/"+during.hash+".nar", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) == 0 {
		t.Errorf("NAR on eu-1 after the heal: %d, %d bytes", resp.StatusCode, len(b))
	}
	// And eu-1 takes writes again (forwarded).
	if _, err := pushUntilAcked(eu, "part", newSynthPath("after", 8<<10), time.Now().Add(30*time.Second)); err != nil {
		t.Error(err)
	}
}

// TestCluster_WrongSecret: a node with another cluster secret can neither
// gossip with nor join the cluster, and says so in its log.
func TestCluster_WrongSecret(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 20*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "eu-2", region: "eu"})
	intruder := c.add(nodeSpec{name: "xx-1", region: "xx"}, "another-cluster-secret-0123456789abcdef", true)
	intruder.start()
	eventually.Within(t, 30*time.Second, "the intruder logging why it cannot join", func() bool {
		return strings.Contains(intruder.log.String(), "use another [cluster] secret")
	})
	st, err := c.node("eu-1").status()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Nodes {
		if m.Name == "xx-1" {
			t.Errorf("the cluster lists the node with the wrong secret: %+v", m)
		}
	}
	if intruder.ready() {
		t.Error("the node with the wrong secret says it is ready")
	}
	// Never bootstrapped (it has join), so it takes no writes: 503, with why.
	resp, err := intruder.do("POST", "_api/v1/cache-config/lonely", c.admin,
		strings.NewReader(`{"keypair":"Generate","is_public":true,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "leader") {
		t.Errorf("a write on the node that could not join: %d %s", resp.StatusCode, b)
	}
}

// TestCluster_ManyPathsToFollowerAreBatched pushes 500 paths to the us
// follower, 8 at a time (as `garret push -j 8` does), with the leader 150 ms
// away: concurrent writes share Raft entries, so the push takes far fewer
// than 500 entries and far less than 500 round trips in sequence (75 s).
func TestCluster_ManyPathsToFollowerAreBatched(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	us1 := c.node("us-1")
	us1.createCache("many")
	st0, err := us1.status()
	if err != nil {
		t.Fatal(err)
	}
	const n, jobs = 500, 8
	work := make(chan synthPath)
	errs := make(chan error, jobs)
	var wg sync.WaitGroup
	start := time.Now()
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if _, err := pushUntilAcked(us1, "many", p, time.Now().Add(time.Minute)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range n {
		work <- newSynthPath(fmt.Sprintf("many-%d", i), 2<<10)
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st1, err := us1.status()
	if err != nil {
		t.Fatal(err)
	}
	entries := st1.CommitIndex - st0.CommitIndex
	t.Logf("%d paths pushed to the us follower, %d at a time, leader at 150 ms RTT: %v, %d Raft entries (500 sequential round trips: 75 s)", n, jobs, took.Round(time.Millisecond), entries)
	if entries > n/2 {
		t.Errorf("%d paths took %d Raft entries: concurrent writes are not batched", n, entries)
	}
}

// roundRobin is a load balancer on this machine in front of some nodes: each
// new connection goes to the next node, so Nix's NAR PUT and narinfo PUT
// land on different nodes.
func roundRobin(t *testing.T, nodes ...*cnode) string {
	t.Helper()
	var mu sync.Mutex
	next := 0
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		mu.Lock()
		nd := nodes[next%len(nodes)]
		next++
		mu.Unlock()
		return nd.host.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", httpPort))
	}}
	target, _ := url.Parse("http://backend/")
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// TestCluster_NixPutsToTwoNodes: `nix copy --to` through a load balancer
// that alternates between the two us nodes. A narinfo PUT finds the NAR
// staged on the other node; every path lands, and substitutes from eu-1.
func TestCluster_NixPutsToTwoNodes(t *testing.T) {
	requireNix(t)
	t.Parallel()
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	eu, us1, us2 := c.node("eu-1"), c.node("us-1"), c.node("us-2")
	us1.createCache("wan")

	// Deterministic: the NAR to us-1, its narinfo to us-2.
	p := newSynthPath("split", 200<<10)
	sum := sha256.Sum256(p.nar)
	resp, err := us1.do("PUT", "wan/nar/"+p.hash+".nar", c.admin, bytes.NewReader(p.nar), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("NAR PUT on us-1: %v %v", resp, err)
	}
	resp.Body.Close()
	ni := fmt.Sprintf("StorePath: %s\nURL: nar/%s.nar\nCompression: none\nNarHash: %s\nNarSize: %d\nReferences: \n",
		p.storePath, p.hash, nixid.NarHash(sum).String(), len(p.nar))
	resp, err = us2.do("PUT", "wan/"+p.hash+".narinfo", c.admin, strings.NewReader(ni), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("narinfo PUT on us-2 for a NAR staged on us-1: %d %s", resp.StatusCode, b)
	}
	resp, err = eu.get("wan/nar/"+p.hash+".nar", "")
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(resp.Body)
	got, err := io.ReadAll(zr)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, p.nar) {
		t.Fatalf("NAR from eu-1: %d bytes (want %d), %v", len(got), len(p.nar), err)
	}
	// A narinfo whose NAR was never uploaded anywhere is still refused.
	q := newSynthPath("never", 1<<10)
	resp, err = us2.do("PUT", "wan/"+q.hash+".narinfo", c.admin, strings.NewReader(strings.ReplaceAll(ni, p.hash, q.hash)), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("narinfo without any staged NAR: %d", resp.StatusCode)
	}

	// The real client through the load balancer.
	lb := roundRobin(t, us1, us2)
	env := nixEnv(t, lb, c.admin)
	top, dep := buildClosure(t, hostNix, env)
	run(t, env, "nix", "copy", "--to", lb+"upload/wan?compression=zstd", top)
	substitute(t, eu.run, nixEnv(t, eu.url(), c.admin), eu.url()+"wan", cachePublicKey(t, us1), top, dep)
}

// TestCluster_ReadThroughStreams: a node asked for a NAR it lacks streams
// it from the peer that has it, verifying every chunk: the first bytes
// arrive long before the whole NAR has crossed a 4 MiB/s, 150 ms link, the
// length is exact, and the second read is local.
func TestCluster_ReadThroughStreams(t *testing.T) {
	t.Parallel()
	// eu-1 does not sync, and us-1 does not wait for a copy: eu-1 must
	// read the NAR through, not have it already.
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu", noSync: true},
		nodeSpec{name: "us-1", region: "us", minCopies: 1})
	eu, us := c.node("eu-1"), c.node("us-1")
	us.createCache("big")
	p := newSynthPath("big", 24<<20) // 12 MiB random: ~12 MiB of frames
	if _, err := pushUntilAcked(us, "big", p, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually.Within(t, 10*time.Second, "narinfo on eu-1", func() bool { return eu.narinfoStatus("big", p.hash) == 200 })
	c.net.SetBandwidth("eu", "us", 4<<20)

	read := func() (ttfb, total time.Duration, body []byte, length int64) {
		start := time.Now()
		resp, err := eu.get("big/nar/"+p.hash+".nar", "")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("NAR on eu-1: %d", resp.StatusCode)
		}
		first := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatal(err)
		}
		ttfb = time.Since(start)
		rest, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return ttfb, time.Since(start), append(first, rest...), resp.ContentLength
	}
	ttfb, total, body, length := read()
	t.Logf("read-through of %d MiB of frames over 4 MiB/s at 150 ms RTT: first byte %v, whole %v", len(body)>>20, ttfb.Round(time.Millisecond), total.Round(time.Millisecond))
	if int64(len(body)) != length {
		t.Errorf("Content-Length %d, body %d", length, len(body))
	}
	zr, _ := zstd.NewReader(bytes.NewReader(body))
	raw, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(raw, p.nar) {
		t.Fatalf("NAR from eu-1 differs: %d bytes, %v", len(raw), err)
	}
	if ttfb > total/2 {
		t.Errorf("first byte after %v of %v: the NAR was not streamed", ttfb, total)
	}
	// Kept: the second read does not cross the link.
	if _, total2, _, _ := read(); total2 > total/3 {
		t.Errorf("second read took %v (first %v): chunks were not kept", total2, total)
	}
}
