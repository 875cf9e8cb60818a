package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	v1 "github.com/garret-cache/garret/api/v1"
)

// scaleConns is how many uploads the scale loader keeps in flight: as many
// as the catalog's batcher puts into one Raft entry (catalog.DefaultConfig's
// MaxBatch), so that full batches can form.
const scaleConns = 256

// scaleSample is how many of the catalog's narinfo URLs wrk cycles through.
const scaleSample = 100_000

// scaleNARContents is the file every scale path's NAR holds.
const scaleNARContents = "garret bench scale\n"

// scaleCache is the cache the scale phase fills.
const scaleCache = "scale"

// scalePhase is issue 13's item 7: a node whose catalog holds -scale-paths
// store paths, every one committed through Raft as a client's push is. A
// loader in this process sends Attic upload-path requests, scaleConns at a
// time, each a distinct store path with the same tiny NAR (the chunk store
// keeps one copy of it, so what grows is the catalog). Then: narinfo
// latency over a random sample of the paths at 1 and 64 connections, the
// data dir's size, a restart of the node, and a second node joining it,
// which gets the catalog as Raft gives it to a new follower (a snapshot
// once the leader's log was compacted behind one, else the log itself).
func (s *suite) scalePhase() error {
	n := s.opts.scalePaths
	jwt := make([]byte, 64)
	_, _ = rand.Read(jwt)
	clusterSecret, err := s.clusterSecret()
	if err != nil {
		return err
	}
	var args []string
	if s.opts.scalePprof != "" {
		args = []string{"--pprof-listen", s.opts.scalePprof}
	}
	g, err := startNode(s, "garret-scale-1", nodeSpec{jwt: jwt, args: args})
	if err != nil {
		return err
	}
	if err := g.createPublicCache(scaleCache); err != nil {
		return err
	}
	pid := g.cmd.Process.Pid
	log.Printf("scale: committing %d store paths through upload-path, %d in flight", n, scaleConns)
	start, cpuBefore := time.Now(), processCPU(pid)
	if err := loadPaths(g, n, s.opts.seed); err != nil {
		return err
	}
	ingest := time.Since(start)
	// The node's CPU per path moves less than the rate with other load on
	// the machine (the rate moved 3.7–5.4k paths/s between runs minutes apart).
	cpuPerPath := (processCPU(pid) - cpuBefore) / time.Duration(n)
	ingestRSS := peakRSS([]int{pid})
	// The catalog's histograms: commands per entry (the batches the
	// batcher formed), and the applies (entries Raft committed together,
	// written with one sync) with their time.
	var entries, commands, applies, applySum float64
	for name, v := range map[string]*float64{"garret_catalog_entry_commands_count": &entries,
		"garret_catalog_entry_commands_sum": &commands, "garret_catalog_apply_seconds_count": &applies,
		"garret_catalog_apply_seconds_sum": &applySum} {
		if *v, err = g.metric(name); err != nil {
			return err
		}
	}
	rate := float64(n) / ingest.Seconds()
	log.Printf("scale: %d paths in %s (%.0f paths/s), %.0f Raft entries of %.1f commands on average, %.0f applies (%.1f entries each, %.2f ms); garretd CPU %d µs per path; VmHWM %.0f MiB",
		n, ingest.Round(100*time.Millisecond), rate, entries, commands/entries, applies, entries/applies, 1000*applySum/applies,
		cpuPerPath.Microseconds(), mib(ingestRSS))

	// narinfo latency over a random sample of the catalog.
	urls := sampleNarinfos(n, s.opts.seed)
	base := strings.TrimSuffix(g.url, "/")
	if err := checkNarinfo(base + urls[0]); err != nil {
		return err
	}
	if err := resetPeakRSS([]int{pid}); err != nil {
		return fmt.Errorf("reset VmHWM: %w", err)
	}
	// One connection again after 64: by then the node's narinfo cache is
	// full, as on a node that has served for a while (with the cache outside
	// the memory governor's count, p99 there was 8–12 ms against ~1 ms on
	// the first run).
	var reads [3]wrkResult
	for i, conns := range []int{1, 64, 1} {
		log.Printf("scale: narinfo, %d connection(s), %d URLs", conns, len(urls))
		if reads[i], err = s.runWrk("scale-narinfo", base, urls, conns, s.opts.duration); err != nil {
			return err
		}
		log.Printf("scale: %.0f req/s, p50 %s ms, p99 %s ms, %d errors", reads[i].perSec(), ms(reads[i].P50US), ms(reads[i].P99US), reads[i].errors())
	}
	readRSS := peakRSS([]int{pid})

	// Raft's snapshots during the ingest (hashicorp/raft takes one when
	// SnapshotThreshold entries followed the last, checked every
	// SnapshotInterval); there is no operator command to take one.
	snaps := raftSnapshots(g.log.Name())

	// Disk, with the node stopped (pebble flushed its memtables).
	g.halt()
	data := filepath.Join(g.dir, "data")
	total, catalogSize := duBytes(data), duBytes(filepath.Join(data, "catalog"))
	log.Printf("scale: data dir %.0f MiB, catalog %.0f MiB (%s)", mib(total), mib(catalogSize), duBreakdown(filepath.Join(data, "catalog")))

	// Restart as a one-node cluster: same data, now with gossip so a second
	// node can join. Ready = /readyz answers 200 (leader known, log applied).
	gossip1, err := freePort()
	if err != nil {
		return err
	}
	if err := g.writeConfig(jwt, clusterTOML("scale-1", clusterSecret, gossip1, "")); err != nil {
		return err
	}
	start = time.Now()
	if err := g.start(); err != nil {
		return err
	}
	if err := waitReady(g, 2*time.Minute); err != nil {
		return err
	}
	restart := time.Since(start)
	log.Printf("scale: restart with %d paths: ready in %s", n, restart.Round(10*time.Millisecond))
	target, err := g.appliedIndex()
	if err != nil {
		return err
	}

	// A second node joins; it has the catalog once its applied index
	// reaches the leader's.
	gossip2, err := freePort()
	if err != nil {
		return err
	}
	log.Printf("scale: a second node joins (leader's applied index %d)", target)
	start = time.Now()
	g2, err := startNode(s, "garret-scale-2", nodeSpec{jwt: jwt,
		extra: clusterTOML("scale-2", clusterSecret, gossip2, fmt.Sprintf("127.0.0.1:%d", gossip1))})
	if err != nil {
		return err
	}
	if err := waitApplied(g2, target, 5*time.Minute); err != nil {
		return err
	}
	join := time.Since(start)
	joinRSS := peakRSS([]int{g2.cmd.Process.Pid})
	how := "log replay"
	if restored := raftRestores(g2.log.Name()); len(restored) > 0 {
		how = "snapshot install: " + strings.Join(restored, "; ")
	}
	log.Printf("scale: second node has the catalog after %s (%s); its VmHWM %.0f MiB", join.Round(10*time.Millisecond), how, mib(joinRSS))
	if err := checkNarinfo(strings.TrimSuffix(g2.url, "/") + urls[0]); err != nil {
		return fmt.Errorf("second node: %w", err)
	}
	g2.stop()
	g.stop()

	s.scale = fmt.Sprintf("%d store paths committed to one node through Attic's `PUT /_api/v1/upload-path` by a Go loader in the suite, "+
		"%d requests in flight, each a distinct store path with the same %d-byte NAR (the chunk store keeps it once: what grows is the catalog); "+
		"narinfo by wrk cycling through %d of the paths drawn at random, %s per run, at 1, 64 and again 1 connection; then the node is restarted as a one-node cluster "+
		"(gossip on) and a second node (sync = false) joins it", n, scaleConns, len(tinyNAR(scaleNARContents)), len(urls), s.opts.duration)
	paths := fmt.Sprintf("%d paths", n)
	snapRow := row{figure: fmt.Sprintf("scale: Raft snapshots during the ingest (SnapshotThreshold 8192 entries, checked every 2–4 min)"),
		garret: "none", peer: none, ratio: none, target: none, met: none}
	if len(snaps) > 0 {
		var parts []string
		for _, sn := range snaps {
			parts = append(parts, fmt.Sprintf("%.1f s at index %d", sn.took.Seconds(), sn.index))
		}
		snapRow.garret = strings.Join(parts, ", ")
	}
	s.rows = append(s.rows,
		row{figure: fmt.Sprintf("scale: commit %s through upload-path (%d in flight), paths/s", paths, scaleConns),
			garret: human(rate), peer: none, ratio: none, target: none, met: none},
		row{figure: "scale: ingest wall time, s; Raft entries; commands per entry; entries per synced apply; ms per apply; garretd CPU per path, µs",
			garret: fmt.Sprintf("%.1f; %.0f; %.1f; %.1f; %.2f; %d", ingest.Seconds(), entries, commands/entries, entries/applies,
				1000*applySum/applies, cpuPerPath.Microseconds()),
			peer: none, ratio: none, target: none, met: none},
		scaleLatencyRow(fmt.Sprintf("scale: narinfo p50 / p99 at %s, 1 connection", paths), reads[0]),
		scaleLatencyRow(fmt.Sprintf("scale: narinfo p50 / p99 at %s, 64 connections", paths), reads[1]),
		scaleLatencyRow(fmt.Sprintf("scale: narinfo p50 / p99 at %s, 1 connection after the 64 (narinfo cache full)", paths), reads[2]),
		row{figure: "scale: narinfo req/s at 1 / 64 / 1 connections; errors",
			garret: fmt.Sprintf("%s / %s / %s; %d", human(reads[0].perSec()), human(reads[1].perSec()), human(reads[2].perSec()),
				reads[0].errors()+reads[1].errors()+reads[2].errors()),
			peer: none, ratio: none, target: none, met: none},
		snapRow,
		row{figure: fmt.Sprintf("scale: restart with %s, s to /readyz", paths), garret: fmt.Sprintf("%.1f", restart.Seconds()),
			peer: none, ratio: none, target: none, met: none},
		row{figure: fmt.Sprintf("scale: a new node joins and has the catalog (%s), s", how), garret: fmt.Sprintf("%.1f", join.Seconds()),
			peer: none, ratio: none, target: "snapshot + restore < 30 s", met: yesNo(join < 30*time.Second)},
		row{figure: "scale: on-disk size, data dir / catalog (Raft log, snapshots, FSM), MiB",
			garret: fmt.Sprintf("%.0f / %.0f", mib(total), mib(catalogSize)), peer: none, ratio: none, target: none, met: none},
		memRow("scale: peak RSS (VmHWM), ingest, MiB", ingestRSS, 0, 256),
		memRow("scale: peak RSS (VmHWM), narinfo runs, MiB", readRSS, 0, 256),
		memRow("scale: peak RSS (VmHWM) of the joining node, MiB", joinRSS, 0, 256),
	)
	return nil
}

// scaleLatencyRow shows p50 / p99 in ms against the target p99 < 2 ms.
func scaleLatencyRow(figure string, r wrkResult) row {
	return row{figure: figure + ", ms", garret: ms(r.P50US) + " / " + ms(r.P99US), peer: none, ratio: none,
		target: "p99 < 2 ms", met: yesNo(r.Requests > 0 && r.P99US < 2000)}
}

// clusterTOML is the scale phase's [cluster] section: one region on loopback,
// joining join (none: the node starts the cluster).
func clusterTOML(name, secret string, gossipPort int, join string) string {
	t := fmt.Sprintf("[cluster]\nnode-name = %q\nregion = \"bench\"\nsecret = %q\ngossip-listen = \"127.0.0.1:%d\"\n", name, secret, gossipPort)
	if join != "" {
		// sync = false: the joining node takes the catalog only; copying
		// chunks in the background is replication (issue 13 item 6).
		t += fmt.Sprintf("join = [%q]\nsync = false\n", join)
	}
	return t
}

// scaleHash is the store path hash of path i: distinct, deterministic.
func scaleHash(seed string, i int) string {
	h := sha256.Sum256([]byte("garret-bench-scale/" + seed + "/" + strconv.Itoa(i)))
	return nixbase32.EncodeToString(h[:20])
}

// tinyNAR is a NAR of one regular file holding contents.
func tinyNAR(contents string) []byte {
	var b bytes.Buffer
	str := func(s string) {
		var l [8]byte
		binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
		b.Write(l[:])
		b.WriteString(s)
		b.Write(make([]byte, (8-len(s)%8)%8))
	}
	for _, s := range []string{"nix-archive-1", "(", "type", "regular", "contents", contents, ")"} {
		str(s)
	}
	return b.Bytes()
}

// loadPaths commits n store paths to g's scale cache through Attic's
// upload-path, scaleConns requests in flight, and fails on the first
// refusal.
func loadPaths(g *garret, n int, seed string) error {
	body := tinyNAR(scaleNARContents)
	sum := sha256.Sum256(body)
	narHash := "sha256:" + nixbase32.EncodeToString(sum[:])
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: scaleConns, MaxConnsPerHost: scaleConns,
		DisableCompression: true}}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	upload := func(i int) error {
		h := scaleHash(seed, i)
		info, err := json.Marshal(v1.UploadPathNarInfo{Cache: scaleCache, StorePathHash: h,
			StorePath: "/nix/store/" + h + "-scale-" + strconv.Itoa(i), References: []string{}, Sigs: []string{},
			NarHash: narHash, NarSize: int64(len(body))})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, "PUT", g.url+"_api/v1/upload-path", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+g.token)
		req.Header.Set(v1.HeaderNarInfo, string(info))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("upload-path %d: %s: %s", i, resp.Status, b)
		}
		return nil
	}
	for range scaleConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := upload(i); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		start, last := time.Now(), int64(0)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				log.Printf("scale: %d of %d paths committed (%.0f/s over the last 15 s, %.0f s so far)", d, n,
					float64(d-last)/15, time.Since(start).Seconds())
				last = d
			}
		}
	}()
	wg.Wait()
	close(stop)
	client.CloseIdleConnections()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// sampleNarinfos is the narinfo URL of scaleSample paths (all of them if
// fewer) drawn at random from the n, in random order.
func sampleNarinfos(n int, seed string) []string {
	r := mrand.New(mrand.NewPCG(uint64(n), 13))
	idx := r.Perm(n)[:min(n, scaleSample)]
	urls := make([]string, len(idx))
	for k, i := range idx {
		urls[k] = "/" + scaleCache + "/" + scaleHash(seed, i) + ".narinfo"
	}
	return urls
}

func checkNarinfo(u string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("StorePath: /nix/store/")) {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return nil
}

// metric is the value of a sample of the node's /metrics without labels
// (a gauge, or a histogram's _sum or _count).
func (g *garret) metric(name string) (float64, error) {
	m, err := g.metrics(name)
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("%smetrics has no %s", g.url, name)
	}
	return v, nil
}

// appliedIndex is the last log index applied to the node's catalog state
// (Raft's own applied index runs ahead of the FSM's writes).
func (g *garret) appliedIndex() (uint64, error) {
	v, err := g.metric("garret_catalog_applied_index")
	return uint64(v), err
}

func waitReady(g *garret, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(g.url + "readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s (see %s)", g.url, limit, g.log.Name())
}

// waitApplied waits until g's catalog has applied index idx.
func waitApplied(g *garret, idx uint64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last uint64
	for time.Now().Before(deadline) {
		if v, err := g.appliedIndex(); err == nil {
			if last = v; last >= idx {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s applied %d of %d after %s (see %s)", g.url, last, idx, limit, g.log.Name())
}

// raftSnapshot is one snapshot hashicorp/raft logged.
type raftSnapshot struct {
	index uint64
	took  time.Duration
}

var (
	logTime  = regexp.MustCompile(`\btime=(\S+)`)
	logIndex = regexp.MustCompile(`\bindex=(\d+)`)
)

// raftSnapshots reads a node's log for hashicorp/raft's "starting snapshot
// up to" and "snapshot complete up to" lines and pairs them.
func raftSnapshots(logFile string) []raftSnapshot {
	var out []raftSnapshot
	started := map[string]time.Time{}
	scanLog(logFile, func(line string, t time.Time) {
		m := logIndex.FindStringSubmatch(line)
		if m == nil {
			return
		}
		switch {
		case strings.Contains(line, "starting snapshot up to"):
			started[m[1]] = t
		case strings.Contains(line, "snapshot complete up to"):
			if t0, ok := started[m[1]]; ok {
				idx, _ := strconv.ParseUint(m[1], 10, 64)
				out = append(out, raftSnapshot{index: idx, took: t.Sub(t0)})
			}
		}
	})
	return out
}

// raftRestores reads a joining node's log for the snapshots Raft installed
// (the catalog's "restored from snapshot" line and raft's byte count).
func raftRestores(logFile string) []string {
	var out []string
	var bytesCopied string
	scanLog(logFile, func(line string, _ time.Time) {
		if strings.Contains(line, "copied to local snapshot") {
			if m := regexp.MustCompile(`\bbytes=(\d+)`).FindStringSubmatch(line); m != nil {
				bytesCopied = m[1]
			}
		}
		if strings.Contains(line, "catalog restored from snapshot") {
			s := "at applied index " + logField(line, "applied_index")
			if b, err := strconv.ParseInt(bytesCopied, 10, 64); err == nil {
				s += fmt.Sprintf(", %.0f MiB", mib(b))
			}
			out = append(out, s)
		}
	})
	return out
}

func logField(line, key string) string {
	if m := regexp.MustCompile(`\b` + key + `=(\S+)`).FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return "?"
}

func scanLog(logFile string, fn func(line string, t time.Time)) {
	f, err := os.Open(logFile)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var t time.Time
		if m := logTime.FindStringSubmatch(line); m != nil {
			t, _ = time.Parse(time.RFC3339Nano, m[1])
		}
		fn(line, t)
	}
}

// duBytes is the disk usage of the tree at dir (allocated blocks, as du).
func duBytes(dir string) int64 {
	var sum int64
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			sum += allocated(fi)
		}
		return nil
	})
	return sum
}

// duBreakdown is the size of each entry of dir, in MiB.
func duBreakdown(dir string) string {
	entries, _ := os.ReadDir(dir)
	var parts []string
	for _, e := range entries {
		parts = append(parts, fmt.Sprintf("%s %.0f", e.Name(), mib(duBytes(filepath.Join(dir, e.Name())))))
	}
	return strings.Join(parts, ", ")
}

// allocated is a file's allocated size (st_blocks × 512), as du counts it.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
