package main

import (
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// lagBandwidth caps each direction between the regions in the lag phase:
// 100 Mbit/s, in bytes per second.
const lagBandwidth = 100e6 / 8

// lagPathMiB is the NAR size of each path the lag phase pushes.
const lagPathMiB = 4

// lagPhase is issue 13's item 6: -lag-mib of random (incompressible) bytes,
// in paths of 4 MiB, pushed with `nix copy --to` at eu-1 while the link to
// us-1 is capped at 100 Mbit/s; the lag runs from the push's start until
// us-1 holds every path, against what the link allows: the bytes that must
// cross ÷ the bandwidth + one round trip.
func (s *suite) lagPhase() error {
	paths, total, err := s.lagPaths()
	if err != nil {
		return err
	}
	c, err := startCluster(s, "lag")
	if err != nil {
		return err
	}
	defer c.close()
	c.net.SetBandwidth("eu", "us", lagBandwidth)
	if _, err := c.createCache("lag"); err != nil {
		return err
	}
	const frameBytes = "garret_syncer_frame_bytes_total"
	before, err := c.us.metrics(frameBytes, "garret_nar_read_through_total")
	if err != nil {
		return err
	}
	crossed0 := c.net.Bytes("eu", "us")
	missing := map[string]bool{}
	for _, p := range paths {
		missing[p] = true
	}
	log.Printf("lag: nix copy of %d paths (%.0f MiB) to eu-1, 100 Mbit/s to us-1", len(paths), mib(total))
	start := time.Now()
	pushed, err := s.pushFrom(c.euHost, c.eu, "lag", paths)
	if err != nil {
		return err
	}
	// Random bytes do not compress: us-1 holds it all once it copied at
	// least their size in frames (a guard against a syncer that has not
	// heard of the last paths yet) and has nothing left to copy.
	if err := waitFor(5*time.Minute, "us-1 to hold every path", func() bool {
		if !c.us.caught("lag", missing) {
			return false
		}
		m, err := c.us.metrics(frameBytes)
		return err == nil && m[frameBytes]-before[frameBytes] >= 0.99*float64(total)
	}); err != nil {
		return err
	}
	lag := time.Since(start)
	crossed := c.net.Bytes("eu", "us") - crossed0
	limit := time.Duration(float64(total)/lagBandwidth*float64(time.Second)) + wanRTT
	log.Printf("lag: push %s; on us-1 %s after its start (%s after its end); limit %s; %.1f MiB crossed",
		pushed.Round(10*time.Millisecond), lag.Round(10*time.Millisecond), (lag - pushed).Round(10*time.Millisecond),
		limit.Round(10*time.Millisecond), mib(int64(crossed)))

	// Every NAR from us-1 itself: nothing read through from eu-1.
	for _, p := range paths {
		if code, _ := c.us.status("lag/nar/" + hashPart(p) + ".nar"); code != 200 {
			return fmt.Errorf("NAR of %s on us-1: %d", p, code)
		}
	}
	after, err := c.us.metrics("garret_nar_read_through_total")
	if err != nil {
		return err
	}
	if got := after["garret_nar_read_through_total"] - before["garret_nar_read_through_total"]; got != 0 {
		return fmt.Errorf("us-1 read %v NARs through from eu-1 after replication was done", got)
	}
	s.notes = append(s.notes, fmt.Sprintf("lag: %d paths of %d MiB of random bytes (%.0f MiB of NAR) pushed with `nix copy --to` at eu-1 "+
		"(a push is acknowledged once eu-1 holds it), 100 Mbit/s and 150 ms RTT to us-1; the push took %s, "+
		"us-1 held it all %s after the push started (%s after it ended); %.1f MiB crossed the link (IP, both ways)",
		len(paths), lagPathMiB, mib(total), pushed.Round(100*time.Millisecond), lag.Round(100*time.Millisecond),
		(lag-pushed).Round(100*time.Millisecond), mib(int64(crossed))))
	s.rows = append(s.rows, timeRow(fmt.Sprintf("replication lag: %.0f MiB from the push's start at eu until us holds it (Garret) "+
		"vs the link's limit (bytes ÷ 100 Mbit/s + RTT), s", mib(total)), lag, limit, 1.5))
	return nil
}

// lagPaths adds -lag-mib of random bytes to the store, a 4 MiB file per
// path, and returns the paths and their NAR size. The bytes depend only on
// the seed, so a second run finds the paths in the store.
func (s *suite) lagPaths() ([]string, int64, error) {
	dir := filepath.Join(s.env.dir, "lag")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	var files []string
	for i := range max(1, s.opts.lagMiB/lagPathMiB) {
		var seed [32]byte
		copy(seed[:], fmt.Sprintf("%s-lag-%d", s.opts.seed, i))
		b := make([]byte, lagPathMiB<<20)
		_, _ = rand.NewChaCha8(seed).Read(b)
		f := filepath.Join(dir, fmt.Sprintf("bench-lag-%d", i))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return nil, 0, err
		}
		files = append(files, f)
	}
	out, err := s.env.nix("nix-store", append([]string{"--add"}, files...)...)
	if err != nil {
		return nil, 0, err
	}
	paths := strings.Fields(out)
	sizes, err := narSizes(s.env, paths)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	for _, p := range paths {
		total += sizes[p]
	}
	return paths, total, nil
}
