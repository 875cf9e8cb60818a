package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/eventually"
)

// wideClosure is n store paths, each holding one blob of pseudo-random
// (incompressible) bytes: n-1 leaves and a top that references them all (a
// package and its dependencies, as far as Nix's copy order goes).
type wideClosure struct {
	blobDir string
	n, size int
	nonce   string
}

// blob writes blob i (deterministic from i and the nonce, with a few bytes
// changed when edited) and returns its SHA-256.
func (w wideClosure) blob(t *testing.T, i int, edited bool) string {
	t.Helper()
	f, err := os.Create(filepath.Join(w.blobDir, fmt.Sprintf("blob-%d", i)))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	seed := fnv.New64a()
	_, _ = seed.Write([]byte(w.nonce))
	r := rand.New(rand.NewPCG(uint64(i), seed.Sum64())) // another closure's blobs share no chunk
	var b [8]byte
	for off := 0; off < w.size; off += 8 {
		v := r.Uint64()
		if edited && off >= w.size/2 && off < w.size/2+64 {
			v = ^v // 64 bytes in the middle: one chunk changes
		}
		for k := range b {
			b[k] = byte(v >> (8 * k))
		}
		_, _ = bw.Write(b[:])
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// build writes the blobs (blob edit, if ≥ 0, changed) and builds the
// closure with nc; it returns the store paths in order (the last is the
// top) and each blob's SHA-256. A blob's hash is part of its derivation, so
// an edited blob makes a new path for it and for the top.
func (w wideClosure) build(t *testing.T, nc nixClient, env []string, edit int) (paths, sums []string) {
	t.Helper()
	var expr strings.Builder
	expr.WriteString("let\n")
	for i := range w.n {
		sum := w.blob(t, i, i == edit)
		sums = append(sums, sum)
		prev := "none"
		if i == w.n-1 {
			var refs []string
			for j := range w.n - 1 {
				refs = append(refs, fmt.Sprintf("${d%d}", j))
			}
			prev = strings.Join(refs, " ")
		}
		fmt.Fprintf(&expr, `  d%[1]d = builtins.derivation { name = "garret-wide-%[1]d"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; /bin/cp %[2]s/blob-%[1]d $out/blob; echo %[3]s > $out/refs; echo %[4]s %[5]s > $out/id"]; };
`, i, w.blobDir, prev, w.nonce, sum)
	}
	fmt.Fprintf(&expr, "in d%d\n", w.n-1)
	file := filepath.Join(t.TempDir(), "wide.nix")
	if err := os.WriteFile(file, []byte(expr.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	top := strings.TrimSpace(nc.run(t, env, "nix-build", file, "--no-out-link"))
	closure := strings.Fields(nc.run(t, env, "nix-store", "-q", "--requisites", top))
	byIndex := map[int]string{}
	for _, p := range closure {
		if i := strings.Index(p, "-garret-wide-"); i > 0 {
			n, err := strconv.Atoi(p[i+len("-garret-wide-"):])
			if err == nil {
				byIndex[n] = p
			}
		}
	}
	for i := range w.n {
		if byIndex[i] == "" {
			t.Fatalf("closure of %s lacks path %d: %v", top, i, closure)
		}
		paths = append(paths, byIndex[i])
	}
	return paths, sums
}

// metric is an unlabelled series of the node's /metrics (-1 if absent).
func (nd *cnode) metric(name string) float64 {
	resp, err := nd.get("metrics", "")
	if err != nil {
		nd.c.t.Fatalf("metrics of %s: %v", nd.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// replicated reports whether every node named holds everything placement
// gives it, as the cluster status asked of via shows their syncers.
func replicated(via *cnode, names ...string) bool {
	st, err := via.status()
	if err != nil {
		return false
	}
	done := 0
	for _, n := range st.Nodes {
		for _, name := range names {
			if n.Name == name && n.Replication != nil && n.Replication.Backlog == 0 && !n.Replication.Scanning {
				done++
			}
		}
	}
	return done == len(names)
}

// TestReplication_WANClosure is the replication issue's "done when" on the
// emulated WAN (eu: 1 node, us: 2; 150 ms RTT and 100 Mbit/s between the
// regions), with real Nix:
//   - a closure of 50 paths and 200 MiB is pushed with `nix copy --to` at
//     the eu node, which is killed (-9) as soon as nix copy exits 0; the whole
//     closure then substitutes from a us node, every byte from that node's
//     own store;
//   - the replication lag is printed beside what the link allows;
//   - a node that was down catches up by itself;
//   - the closure pushed again with one file changed moves only the
//     changed chunks across the WAN.
func TestReplication_WANClosure(t *testing.T) {
	clients := nixClients(t) // Debian 12's 2.8, and the current Nix in CI
	requireWAN(t)
	current := clients[len(clients)-1]
	const rtt, bandwidth = 150 * time.Millisecond, 100e6 / 8 // 100 Mbit/s
	c := newCluster(t, rtt, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	c.net.SetBandwidth("eu", "us", bandwidth)
	eu, us1, us2 := c.node("eu-1"), c.node("us-1"), c.node("us-2")
	eu.createCache("wan")
	env := nixEnv(t, eu.url(), c.admin)
	w := wideClosure{blobDir: t.TempDir(), n: 50, size: 4 << 20, nonce: strconv.FormatInt(time.Now().UnixNano(), 36)}
	paths, sums := w.build(t, current, env, -1)
	top := paths[len(paths)-1]

	// 1. Push at eu-1, then kill it at once.
	wan0 := c.net.Bytes("eu", "us")
	start := time.Now()
	if out, err := eu.nixOn(current, env, "nix", "copy", "--to", eu.url()+"upload/wan?compression=zstd", top); err != nil {
		t.Fatalf("%s copy: %v\n%s", current.name, err, out)
	}
	pushed := time.Now()
	ackSum, ackCount := eu.metric("garret_ack_wait_seconds_sum"), eu.metric("garret_ack_wait_seconds_count")
	eu.kill()
	t.Logf("eu-1 waited for %v copies, %.3f s each on average", ackCount, ackSum/ackCount)
	t.Logf("%s copy of %d paths, %d MiB, to eu-1 (min-copies-before-ack 2): %v", current.name, w.n, w.n*w.size>>20, pushed.Sub(start).Round(time.Millisecond))

	// 2. The us nodes hold everything without eu-1.
	eventually.Within(t, 3*time.Minute, "both us nodes to hold every path", func() bool {
		for _, nd := range []*cnode{us1, us2} {
			for _, p := range paths {
				if nd.narinfoStatus("wan", strings.TrimPrefix(p, "/nix/store/")[:32]) != 200 {
					return false
				}
			}
		}
		return replicated(us1, "us-1", "us-2")
	})
	done := time.Now()
	var stored int64 // NAR bytes: random blobs do not compress
	for _, p := range paths {
		ni := us1.narinfo("wan", strings.TrimPrefix(p, "/nix/store/")[:32])
		for _, line := range strings.Split(ni, "\n") {
			if v, ok := strings.CutPrefix(line, "NarSize: "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				stored += n
			}
		}
	}
	wanBytes := c.net.Bytes("eu", "us") - wan0
	bound := time.Duration(float64(stored)/bandwidth*float64(time.Second)) + rtt
	took := done.Sub(start)
	t.Logf("replicated to both us nodes %v after nix copy exited; from the push's start %v, %.2f× what the link allows (%d MiB of NARs ÷ 100 Mbit/s + RTT = %v); %d MiB crossed the WAN",
		done.Sub(pushed).Round(time.Millisecond), took.Round(time.Millisecond), float64(took)/float64(bound), stored>>20, bound.Round(time.Millisecond), wanBytes>>20)

	// 3. Real Nix substitutes the whole closure from us-2; us-2 reads
	// nothing from peers but the one chunk flipped on its disk, which the
	// read repairs from us-1 while still serving the right bytes.
	seg := corruptSegment(t, us2)
	readThrough := us2.metric("garret_nar_read_through_total")
	store := t.TempDir()
	key := cachePublicKey(t, us1)
	subEnv := nixEnv(t, us2.url(), c.admin)
	substart := time.Now()
	us2.run(subEnv, "nix-store", "--store", store, "-r", top,
		"--option", "substituters", us2.url()+"wan", "--option", "trusted-public-keys", key, "--option", "require-sigs", "true")
	t.Logf("substituted %d paths from us-2 with eu-1 dead: %v", len(paths), time.Since(substart).Round(time.Millisecond))
	for i, p := range paths {
		b, err := os.ReadFile(filepath.Join(store, p, "blob"))
		if sum := sha256.Sum256(b); err != nil || hex.EncodeToString(sum[:]) != sums[i] {
			t.Fatalf("substituted %s/blob: %v", p, err)
		}
	}
	if got := us2.metric("garret_nar_read_through_total"); got != readThrough {
		t.Errorf("us-2 read %v NARs through from peers; every byte should have come from its own store", got-readThrough)
	}
	if got := us2.metric("garret_chunkstore_read_repaired_chunks_total"); got != 1 {
		t.Errorf("us-2 repaired %v chunks while serving; a byte of %s was flipped", got, seg)
	}

	// 4. A node that was down catches up: what us-1 took meanwhile
	// reaches eu-1 when it starts again, without an operator.
	var meanwhile []synthPath
	for i := range 3 {
		p := newSynthPath(fmt.Sprintf("while-down-%d", i), 1<<20)
		if _, err := pushUntilAcked(us1, "wan", p, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		meanwhile = append(meanwhile, p)
	}
	restarted := time.Now()
	eu.start()
	eventually.Within(t, 2*time.Minute, "eu-1 to catch up", func() bool {
		return eu.narinfoStatus("wan", meanwhile[2].hash) == 200 && replicated(us1, "eu-1")
	})
	t.Logf("eu-1 caught up %v after its restart", time.Since(restarted).Round(time.Millisecond))
	readThrough = eu.metric("garret_nar_read_through_total")
	for _, p := range meanwhile {
		resp, err := eu.get("wan/nar/"+p.hash+".nar", "")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("NAR of %s on eu-1: %d", p.storePath, resp.StatusCode)
		}
	}
	if got := eu.metric("garret_nar_read_through_total"); got != readThrough {
		t.Errorf("eu-1 read %v NARs through after catching up", got-readThrough)
	}

	// 5. The closure again, with Debian's Nix, with the blob of path 25
	// changed: it and the top are new paths, but only the changed chunk (and
	// metadata) crosses the WAN.
	edited, _ := w.build(t, hostNix, env, 25)
	wan0 = c.net.Bytes("eu", "us")
	eu.run(env, "nix", "copy", "--to", eu.url()+"upload/wan?compression=zstd", edited[len(edited)-1])
	eventually.Within(t, 2*time.Minute, "the edited closure on every node", func() bool { return replicated(us1, "eu-1", "us-1", "us-2") })
	newNAR := 2 * int64(w.size)
	crossed := c.net.Bytes("eu", "us") - wan0
	t.Logf("re-push with one blob changed: 2 new paths, %d MiB of NARs; %d KiB crossed the WAN", newNAR>>20, crossed>>10)
	if crossed > uint64(newNAR/20) {
		t.Errorf("%d bytes crossed the WAN for %d bytes of new NARs that differ in one chunk", crossed, newNAR)
	}
}

// TestReplication_AckCost measures what min-copies-before-ack costs a push
// at 150 ms RTT and 100 Mbit/s: the same kind of closure pushed with the
// current Nix to a node that acknowledges once it holds a path (eu-1,
// min-copies-before-ack = 1) and to one that waits for a copy in the other
// region (eu-2, the default 2). The README quotes the numbers it logs.
func TestReplication_AckCost(t *testing.T) {
	clients := nixClients(t)
	requireWAN(t)
	current := clients[len(clients)-1]
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu", minCopies: 1},
		nodeSpec{name: "eu-2", region: "eu"}, nodeSpec{name: "us-1", region: "us"})
	c.net.SetBandwidth("eu", "us", 100e6/8)
	c.node("eu-1").createCache("wan")
	took := map[string]time.Duration{}
	us := c.node("us-1")
	for _, name := range []string{"eu-1", "eu-2"} {
		nd := c.node(name)
		env := nixEnv(t, nd.url(), c.admin)
		w := wideClosure{blobDir: t.TempDir(), n: 20, size: 4 << 20, nonce: name + strconv.FormatInt(time.Now().UnixNano(), 36)}
		paths, _ := w.build(t, current, env, -1)
		start := time.Now()
		if out, err := nd.nixOn(current, env, "nix", "copy", "--to", nd.url()+"upload/wan?compression=zstd", paths[len(paths)-1]); err != nil {
			t.Fatalf("%s copy to %s: %v\n%s", current.name, name, err, out)
		}
		took[name] = time.Since(start)
		// How long the background copy to us-1 took, against the link.
		eventually.Within(t, 2*time.Minute, "us-1 to hold the closure", func() bool {
			for _, p := range paths {
				if us.narinfoStatus("wan", strings.TrimPrefix(p, "/nix/store/")[:32]) != 200 {
					return false
				}
			}
			return replicated(us, "us-1")
		})
		lag := time.Since(start)
		bound := time.Duration(float64(w.n*w.size)/(100e6/8)*float64(time.Second)) + 150*time.Millisecond
		t.Logf("pushed to %s: on us-1 %v after the push started, %.2f× what the link allows (%v)", name,
			lag.Round(time.Millisecond), float64(lag)/float64(bound), bound.Round(time.Millisecond))
	}
	t.Logf("%s copy of 20 paths, 80 MiB: %v acknowledged by eu-1 alone, %v with a copy in us first (%+.0f%%)", current.name,
		took["eu-1"].Round(time.Millisecond), took["eu-2"].Round(time.Millisecond), 100*(float64(took["eu-2"])/float64(took["eu-1"])-1))
}

// corruptSegment flips one byte in the middle of the largest segment file
// of nd's chunk store (segments are frames end to end, so it lands in one)
// and returns the file's path.
func corruptSegment(t *testing.T, nd *cnode) string {
	t.Helper()
	var largest string
	var size int64
	_ = filepath.WalkDir(nd.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".seg") {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				largest, size = p, fi.Size()
			}
		}
		return nil
	})
	if largest == "" {
		t.Fatalf("no segment file under %s", nd.dir)
	}
	f, err := os.OpenFile(largest, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, size/2); err != nil {
		t.Fatal(err)
	}
	return largest
}

// TestReplication_ShareOnJoinAndWipe: with copies-per-region = 1, a fourth
// node joining the us region takes about a third of what the region holds,
// and nothing more; wiped and started again (a new node to the cluster), it
// converges to a share again without an operator.
func TestReplication_ShareOnJoinAndWipe(t *testing.T) {
	requireWAN(t)
	t.Parallel()
	spec := func(name, region string) nodeSpec { return nodeSpec{name: name, region: region, perRegion: 1} }
	c := newCluster(t, 150*time.Millisecond, spec("eu-1", "eu"), spec("us-1", "us"), spec("us-2", "us"))
	eu := c.node("eu-1")
	eu.createCache("share")
	const objects = 30
	for i := range objects {
		if _, err := pushUntilAcked(eu, "share", newSynthPath(fmt.Sprintf("share-%d", i), 128<<10), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	eventually.Within(t, time.Minute, "the pushes placed", func() bool { return replicated(eu, "eu-1", "us-1", "us-2") })

	// share is the part of what eu-1 holds (everything: the only eu node)
	// that nd holds.
	share := func(nd *cnode) float64 {
		return nd.metric("garret_chunkstore_segment_bytes") / eu.metric("garret_chunkstore_segment_bytes")
	}
	us3 := c.add(spec("us-3", "us"), c.secret, true)
	us3.start()
	c.waitMembers(4)
	eventually.Within(t, time.Minute, "us-3 to take its share", func() bool { return replicated(eu, "us-3") && share(us3) > 0 })
	time.Sleep(2 * time.Second) // more would have come by now
	got := share(us3)
	t.Logf("us-3 joined and holds %.0f%% of the region's data (us-1 %.0f%%, us-2 %.0f%%)", 100*got, 100*share(c.node("us-1")), 100*share(c.node("us-2")))
	if got < 0.1 || got > 0.6 {
		t.Errorf("us-3 holds %.0f%% of the data; with three us nodes and one copy per region, about a third", 100*got)
	}

	// Wiped: a new identity, the same name and address; it joins again.
	us3.kill()
	if err := os.RemoveAll(filepath.Join(us3.dir, "data")); err != nil {
		t.Fatal(err)
	}
	us3.start()
	eventually.Within(t, 2*time.Minute, "the wiped us-3 to converge", func() bool {
		return replicated(eu, "us-3") && share(us3) > 0
	})
	time.Sleep(2 * time.Second)
	got = share(us3)
	t.Logf("us-3 wiped and started again holds %.0f%% of the region's data", 100*got)
	if got < 0.1 || got > 0.6 {
		t.Errorf("the wiped us-3 holds %.0f%% of the data; want about a third again", 100*got)
	}
}
