package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// target is one server as the read benchmarks see it: where its narinfos
// are, and its NARs as its narinfos name them.
type target struct {
	name     string
	base     string   // http://host:port
	prefix   string   // URL path of the cache, ending in /
	narinfos []string // URL paths, one per corpus path
	nars     []nar    // one per corpus path
	pids     func() []int
}

type nar struct {
	url      string // URL path
	narSize  int64  // NarSize from the narinfo
	fileSize int64  // bytes served (Content-Length of a HEAD)
}

// readsPhase pushes the corpus into a fresh node with 8 concurrent nix copy
// (its peak RSS), serves the file:// cache with nginx, and measures both.
func (s *suite) readsPhase() error {
	if s.fileCache == "" {
		log.Print("reads: nix copy --to file:// (for nginx; not timed)")
		dir := filepath.Join(s.env.dir, "filecache")
		if _, err := s.writeFileCache(dir); err != nil {
			return err
		}
		s.fileCache = dir
	}
	g, err := startGarret(s, "garret-reads")
	if err != nil {
		return err
	}
	if err := g.createPublicCache("bench"); err != nil {
		return err
	}
	log.Printf("reads: 8-way push (8 × nix copy of disjoint sub-closures)")
	push8Time, err := s.push8(g)
	if err != nil {
		return err
	}
	gpid := g.cmd.Process.Pid
	pushRSS := peakRSS([]int{gpid})
	log.Printf("reads: 8-way push took %s; garretd VmHWM %.0f MiB", push8Time.Round(100e6), mib(pushRSS))

	ng, err := startNginx(s, s.fileCache)
	if err != nil {
		return err
	}
	gt := &target{name: "garret", base: strings.TrimSuffix(g.url, "/"), prefix: "/bench/", pids: func() []int { return []int{gpid} }}
	nt := &target{name: "nginx", base: strings.TrimSuffix(ng.url, "/"), prefix: "/", pids: func() []int { return pids(ng.cmd.Process.Pid) }}
	for _, t := range []*target{gt, nt} {
		if err := s.discover(t); err != nil {
			return err
		}
	}

	d := s.opts.duration
	var narinfo [3][2]wrkResult
	var readRSS [2]int64
	for i, conns := range []int{1, 64, 1000} {
		for j, t := range []*target{gt, nt} {
			if conns == 1000 {
				if err := resetPeakRSS(t.pids()); err != nil {
					return fmt.Errorf("reset VmHWM: %w", err)
				}
			}
			log.Printf("reads: narinfo, %s, %d connection(s)", t.name, conns)
			if narinfo[i][j], err = s.runWrk("narinfo-"+t.name, t.base, t.narinfos, conns, d); err != nil {
				return err
			}
			if conns == 1000 {
				readRSS[j] = peakRSS(t.pids())
			}
		}
	}
	var narRate [2][2]float64
	var narErrs [2][2]int64
	for i, conns := range []int{1, 16} {
		for j, t := range []*target{gt, nt} {
			log.Printf("reads: NARs, %s, %d connection(s)", t.name, conns)
			urls := make([]string, len(t.nars))
			for k, n := range t.nars {
				urls[k] = n.url
			}
			r, err := s.runWrk("nar-"+t.name, t.base, urls, conns, d)
			if err != nil {
				return err
			}
			narRate[i][j], narErrs[i][j] = narEquivalent(r, t.nars), r.errors()
			issued := 0
			r.issued(len(t.nars), func(int) { issued++ })
			log.Printf("reads: %d responses (%d requests issued), %.0f MiB read in %.1f s: %.0f NAR MiB/s",
				r.Requests, issued, mib(r.Bytes), r.seconds(), narRate[i][j])
		}
	}

	s.rows = append(s.rows,
		rateRow("narinfo req/s, 1 connection", narinfo[0][0].perSec(), narinfo[0][1].perSec(), 1.0),
		latencyRow("narinfo latency p50 / p99, 1 connection", narinfo[0][0], narinfo[0][1], 0),
		rateRow("narinfo req/s, 64 connections", narinfo[1][0].perSec(), narinfo[1][1].perSec(), 1.0),
		latencyRow("narinfo latency p50 / p99, 64 connections", narinfo[1][0], narinfo[1][1], 0),
		rateRow("narinfo req/s, 1000 connections", narinfo[2][0].perSec(), narinfo[2][1].perSec(), 0),
		latencyRow("narinfo latency p50 / p99, 1000 connections", narinfo[2][0], narinfo[2][1], 2.0),
		errorsRow("narinfo errors (socket + non-2xx) at 1 / 64 / 1000 connections",
			[]wrkResult{narinfo[0][0], narinfo[1][0], narinfo[2][0]}, []wrkResult{narinfo[0][1], narinfo[1][1], narinfo[2][1]}),
		rateRow("NAR download, 1 connection, NAR-equivalent MiB/s", narRate[0][0], narRate[0][1], 0.8),
		rateRow("NAR download, 16 connections, NAR-equivalent MiB/s", narRate[1][0], narRate[1][1], 0.9),
		countRow("NAR errors (socket + non-2xx) at 1 / 16 connections", narErrs[0][:], narErrs[1][:]),
		timeRow("8-way `nix copy` push (the memory run), s", push8Time, 0, 0),
		memRow("peak RSS (VmHWM), 8-way `nix copy` push, MiB", pushRSS, 0, 128),
		memRow("peak RSS (VmHWM), narinfo at 1000 connections, MiB (nginx: master + workers)", readRSS[0], readRSS[1], 128),
	)
	return nil
}

// narEquivalent is the NAR bytes per second a wrk run delivered, in MiB/s:
// the bytes it read, scaled by NarSize ÷ served size over the NARs it asked
// for (each thread's sequence is known from its start and count). Response
// headers count as served bytes (a few hundred bytes per NAR).
func narEquivalent(r wrkResult, nars []nar) float64 {
	var narSum, fileSum int64
	r.issued(len(nars), func(i int) {
		narSum += nars[i].narSize
		fileSum += nars[i].fileSize
	})
	if fileSum == 0 {
		return 0
	}
	return mib(int64(float64(r.Bytes)*float64(narSum)/float64(fileSum))) / r.seconds()
}

// discover reads every narinfo of the corpus from t once (which also warms
// it) and HEADs every NAR it names for its served size.
func (s *suite) discover(t *target) error {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}}
	for _, p := range s.corpus.paths {
		u := t.prefix + filepath.Base(p)[:32] + ".narinfo"
		t.narinfos = append(t.narinfos, u)
		resp, err := client.Get(t.base + u)
		if err != nil {
			return err
		}
		var n nar
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			switch k {
			case "URL":
				ref, err := url.Parse(v)
				if err != nil {
					resp.Body.Close()
					return fmt.Errorf("%s%s: URL: %w", t.base, u, err)
				}
				n.url = (&url.URL{Path: t.prefix}).ResolveReference(ref).RequestURI()
			case "NarSize":
				n.narSize, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n.url == "" || n.narSize == 0 {
			return fmt.Errorf("%s%s: %s, URL %q, NarSize %d", t.base, u, resp.Status, n.url, n.narSize)
		}
		head, err := client.Head(t.base + n.url)
		if err != nil {
			return err
		}
		head.Body.Close()
		if head.StatusCode != 200 || head.ContentLength <= 0 {
			return fmt.Errorf("HEAD %s%s: %s, length %d", t.base, n.url, head.Status, head.ContentLength)
		}
		n.fileSize = head.ContentLength
		t.nars = append(t.nars, n)
	}
	var served int64
	for _, n := range t.nars {
		served += n.fileSize
	}
	log.Printf("reads: %s serves the corpus's NARs as %.0f MiB", t.name, mib(served))
	s.served = append(s.served, fmt.Sprintf("%.0f MiB from %s", mib(served), t.name))
	return nil
}
