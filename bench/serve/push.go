package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pushPhase times four pushes of the whole corpus, each into an empty
// destination: `nix copy --to file://` (the peer), `nix copy --to` a null
// HTTP cache (Nix's floor), `nix copy --to` a fresh garretd, and `garret
// push -j 8` to another fresh garretd. It does the first three
// -push-rounds times, interleaved, and keeps each one's least time (on a
// shared machine other load only ever adds time); `garret push`, which no
// target names, runs in the first round only, to keep the suite under 15
// minutes.
func (s *suite) pushPhase() error {
	c := s.corpus
	var fileTimes, copyTimes, nullTimes []time.Duration
	var pushTime time.Duration
	var fileCPU, copyCPU, nullCPU []cpuUse
	var copyPuts []string
	for r := range s.opts.pushRounds {
		log.Printf("push, round %d: nix copy --to file://…?compression=zstd", r+1)
		dir := filepath.Join(s.env.dir, fmt.Sprintf("filecache-%d", r))
		nixBefore := childrenCPU()
		t, err := s.writeFileCache(dir)
		if err != nil {
			return err
		}
		fileTimes = append(fileTimes, t)
		fileCPU = append(fileCPU, cpuUse{nix: childrenCPU() - nixBefore})
		if s.fileCache == "" {
			s.fileCache = dir // nginx serves the first
		} else if err := os.RemoveAll(dir); err != nil {
			return err
		}

		log.Printf("push, round %d: nix copy --to a null HTTP cache", r+1)
		nixBefore = childrenCPU()
		if t, err = s.nullPush(); err != nil {
			return err
		}
		nullTimes = append(nullTimes, t)
		nullCPU = append(nullCPU, cpuUse{nix: childrenCPU() - nixBefore})

		log.Printf("push, round %d: nix copy --to http://garretd/upload/bench?compression=zstd", r+1)
		g, err := startGarret(s, fmt.Sprintf("garret-nixcopy-%d", r))
		if err != nil {
			return err
		}
		if err := g.createPublicCache("bench"); err != nil {
			return err
		}
		netrc, err := s.netrc(g)
		if err != nil {
			return err
		}
		start, nixBefore, nodeBefore := time.Now(), childrenCPU(), processCPU(g.cmd.Process.Pid)
		if _, err := s.env.nix("nix", append([]string{"copy", "--option", "netrc-file", netrc,
			"--to", g.url + "upload/bench?compression=zstd"}, c.paths...)...); err != nil {
			return err
		}
		copyTimes = append(copyTimes, time.Since(start))
		copyCPU = append(copyCPU, cpuUse{nix: childrenCPU() - nixBefore, node: processCPU(g.cmd.Process.Pid) - nodeBefore})
		puts, err := g.putTimes()
		if err != nil {
			return err
		}
		log.Printf("push, round %d: garretd answering nix copy's PUTs: %s", r+1, puts)
		copyPuts = append(copyPuts, puts)
		g.stop()

		if r == 0 {
			log.Printf("push, round %d: garret push -j 8", r+1)
			g, err = startGarret(s, "garret-push")
			if err != nil {
				return err
			}
			if pushTime, err = s.garretPush(g, 8); err != nil {
				return err
			}
			g.stop()
		}
		log.Printf("push, round %d: file:// %s, null HTTP cache %s, nix copy %s", r+1, fileTimes[r].Round(100*time.Millisecond),
			nullTimes[r].Round(100*time.Millisecond), copyTimes[r].Round(100*time.Millisecond))
	}
	least := fmt.Sprintf(", s (least of %d)", s.opts.pushRounds)
	if s.opts.pushRounds == 1 {
		least = ", s"
	}
	// CPU of the rounds whose times are reported.
	fileMin, nullMin, copyMin := slices.Min(fileTimes), slices.Min(nullTimes), slices.Min(copyTimes)
	fc, nc := fileCPU[slices.Index(fileTimes, fileMin)], nullCPU[slices.Index(nullTimes, nullMin)]
	cc := copyCPU[slices.Index(copyTimes, copyMin)]
	s.notes = append(s.notes, fmt.Sprintf("push CPU (user + system, core-seconds, of the rounds in the table): `nix copy --to file://` %.1f; "+
		"`nix copy --to` the null HTTP cache: nix %.1f; `nix copy --to` Garret: nix %.1f + garretd %.1f = %.1f. Nix compresses each NAR whole, "+
		"uploads it, and waits for the answer before its next NAR, so the node's work on a NAR adds to the wall time",
		fc.nix.Seconds(), nc.nix.Seconds(), cc.nix.Seconds(), cc.node.Seconds(), (cc.nix+cc.node).Seconds()),
		pushFloor(fileMin, nullMin),
		"time garretd spent answering the PUTs of that `nix copy` (its request latency histograms): "+copyPuts[slices.Index(copyTimes, copyMin)])
	s.rows = append(s.rows,
		timeRow(fmt.Sprintf("push %.0f MiB: `nix copy --to` (Garret) vs `--to file://`", mib(c.total))+least, copyMin, fileMin, pushTarget),
		timeRow("push CPU, core-seconds: nix + garretd (Garret) vs nix `--to file://`", cc.nix+cc.node, fc.nix, 0),
		timeRow("push: `nix copy --to` a null HTTP cache (answers every PUT at once: Nix's own floor over HTTP) vs `--to file://`"+least,
			nullMin, fileMin, 0),
		timeRow("push: `nix copy --to` Garret vs the null HTTP cache (what the node adds to Nix's own time)"+least, copyMin, nullMin, 0),
		timeRow("push: `garret push -j 8` (Garret, first round) vs `nix copy --to file://` (least of its rounds), s", pushTime, fileMin, 0))
	return nil
}

// pushTarget is issue 13's push target: at most this many times the time of
// `nix copy --to file://`.
const pushTarget = 1.2

// pushFloor says whether Nix's own time over HTTP leaves room for the push
// target.
func pushFloor(file, null time.Duration) string {
	limit := pushTarget * file.Seconds()
	verdict := "no HTTP cache can meet that target with this Nix"
	if null.Seconds() <= limit {
		verdict = fmt.Sprintf("an HTTP cache has %.1f s for its own work", limit-null.Seconds())
	}
	return fmt.Sprintf("push floor: %.1f× `--to file://` is %.1f s, and `nix copy --to` an HTTP cache that answers every PUT at once took Nix %.1f s "+
		"(%.2f× file://): %s", pushTarget, limit, null.Seconds(), null.Seconds()/file.Seconds(), verdict)
}

// writeFileCache writes the corpus into dir with `nix copy --to
// file://…?compression=zstd` and returns how long that took.
func (s *suite) writeFileCache(dir string) (time.Duration, error) {
	start := time.Now()
	if _, err := s.env.nix("nix", append([]string{"copy", "--to", "file://" + dir + "?compression=zstd"}, s.corpus.paths...)...); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// netrc writes a netrc giving nix the node's token (nix sends it as the
// Basic password).
func (s *suite) netrc(g *garret) (string, error) {
	f := filepath.Join(g.dir, "netrc")
	return f, os.WriteFile(f, []byte("machine 127.0.0.1\npassword "+g.token+"\n"), 0o600)
}

// garretPush runs the client as users do: login, cache create, push.
func (s *suite) garretPush(g *garret, jobs int) (time.Duration, error) {
	envv := append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(g.dir, "client-config"))
	client := func(args ...string) error {
		cmd := exec.Command(s.opts.garret, args...)
		cmd.Env = envv
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			tail := out.String()
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return fmt.Errorf("garret %s: %v: %s", args[0], err, tail)
		}
		return nil
	}
	if err := client("login", "bench", g.url, g.token); err != nil {
		return 0, err
	}
	if err := client("cache", "create", "bench"); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := client(append([]string{"push", "bench", "-j", fmt.Sprint(jobs)}, s.corpus.paths...)...); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// push8 pushes the corpus into g with 8 concurrent `nix copy` processes,
// one per disjoint sub-closure, and returns the wall time.
func (s *suite) push8(g *garret) (time.Duration, error) {
	netrc, err := s.netrc(g)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for w := range parts {
		part := s.corpus.part(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"copy", "--option", "netrc-file", netrc, "--to", g.url + "upload/bench?compression=zstd"}, part...)
			// Each nix process needs its own narinfo cache database.
			cache := "XDG_CACHE_HOME=" + filepath.Join(s.env.dir, fmt.Sprintf("xdg-cache-%d", w))
			_, errs[w] = s.env.nixWith([]string{cache}, "nix", args...)
		}()
	}
	wg.Wait()
	if i := slices.IndexFunc(errs, func(e error) bool { return e != nil }); i >= 0 {
		return 0, errs[i]
	}
	return time.Since(start), nil
}

// cpuUse is the CPU time of a push: the nix client's and the node's.
type cpuUse struct{ nix, node time.Duration }

// childrenCPU is the user + system time of this process's waited-for
// children (getrusage RUSAGE_CHILDREN): around one `nix copy`, its CPU.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the user + system time a running process has used so far
// (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s on Linux).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// putTimes sums the node's PUT latencies by route from its request
// histograms: where a `nix copy` waited for the node.
func (g *garret) putTimes() (string, error) {
	type put struct{ sum, count float64 }
	byRoute := map[string]*put{}
	err := g.scrape(func(series string, v float64) {
		name, labels, _ := strings.Cut(series, "{")
		if !strings.Contains(labels, `method="PUT"`) {
			return
		}
		_, route, _ := strings.Cut(labels, `route="`)
		route, _, _ = strings.Cut(route, `"`)
		p := byRoute[route]
		if p == nil {
			p = &put{}
			byRoute[route] = p
		}
		switch name {
		case "garret_http_request_duration_seconds_sum":
			p.sum = v
		case "garret_http_request_duration_seconds_count":
			p.count = v
		}
	})
	if err != nil {
		return "", err
	}
	var parts []string
	for _, route := range slices.Sorted(maps.Keys(byRoute)) {
		if p := byRoute[route]; p.count > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f s over %.0f requests (%.1f ms each)", route, p.sum, p.count, 1000*p.sum/p.count))
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("%smetrics has no PUT latencies", g.url)
	}
	return strings.Join(parts, "; "), nil
}

// nullPush times `nix copy --to` an HTTP binary cache that stores no NAR:
// it reads every PUT to its end and answers 200 at once, and keeps only the
// narinfos (Nix checks that a path's references are in the cache).
// No server can answer sooner, so this is what pushing over HTTP costs Nix
// itself, the floor under the Garret row.
func (s *suite) nullPush() (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	narinfos := map[string][]byte{} // Nix checks that a path's references are there
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ni, ok := narinfos[r.URL.Path]
		mu.Unlock()
		switch {
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".narinfo"):
			b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			mu.Lock()
			narinfos[r.URL.Path] = b
			mu.Unlock()
		case r.Method == http.MethodPut:
			_, _ = io.Copy(io.Discard, r.Body)
		case r.URL.Path == "/nix-cache-info":
			_, _ = io.WriteString(w, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")
		case ok:
			_, _ = w.Write(ni)
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	start := time.Now()
	if _, err := s.env.nix("nix", append([]string{"copy", "--to", "http://" + l.Addr().String() + "?compression=zstd"}, s.corpus.paths...)...); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
