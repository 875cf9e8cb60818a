package main

import (
	"fmt"
	"log"
	"time"
)

// distancePhase is issue 13's item 5: a closure of -distance-paths generated
// paths is pushed with `nix copy --to` at eu-1 of a two-region cluster on
// the emulated WAN (150 ms RTT); once us-1 holds all of it, real Nix on
// us-1's host substitutes it into an empty store from us-1 (near), from
// eu-1 (across the WAN), and from a lone garretd on the same host that took
// the same push (no cluster, no WAN).
func (s *suite) distancePhase() error {
	n := s.opts.distPaths
	log.Printf("distance: building a closure of %d generated paths", n)
	paths, refs, err := buildGenerated(s.env, "distance", n, s.opts.seed+"-distance", nil)
	if err != nil {
		return err
	}
	sizes, err := narSizes(s.env, paths)
	if err != nil {
		return err
	}
	var total int64
	for _, p := range paths {
		total += sizes[p]
	}
	c, err := startCluster(s, "distance")
	if err != nil {
		return err
	}
	defer c.close()
	key, err := c.createCache("bench")
	if err != nil {
		return err
	}
	log.Printf("distance: nix copy of %d paths (%.1f MiB) to eu-1", n, mib(total))
	pushed, err := s.pushFrom(c.euHost, c.eu, "bench", paths)
	if err != nil {
		return err
	}
	start := time.Now()
	missing := map[string]bool{}
	for _, p := range paths {
		missing[p] = true
	}
	if err := waitFor(5*time.Minute, "us-1 to hold the closure", func() bool { return c.us.caught("bench", missing) }); err != nil {
		return err
	}
	log.Printf("distance: pushed in %s, on us-1 %s later", pushed.Round(10*time.Millisecond), time.Since(start).Round(10*time.Millisecond))

	// The lone node runs on us-1's host too, so its client is as near.
	lone, err := startNode(s, "distance-lone", nodeSpec{host: c.usHost, port: nodePort + 1})
	if err != nil {
		return err
	}
	defer lone.stop()
	if err := lone.createPublicCache("bench"); err != nil {
		return err
	}
	loneKey, err := lone.publicKey("bench")
	if err != nil {
		return err
	}
	lonePushed, err := s.pushFrom(c.usHost, lone, "bench", paths)
	if err != nil {
		return err
	}
	log.Printf("distance: nix copy to the lone node %s", lonePushed.Round(10*time.Millisecond))

	const readThrough = "garret_nar_read_through_total"
	before, err := c.us.metrics(readThrough)
	if err != nil {
		return err
	}
	// The near runs take seconds and the machine is shared: the least of
	// five interleaved runs each; the WAN run takes a minute, once.
	var near, loneTime time.Duration
	for r := range nearRounds {
		t, err := s.substitute(c.usHost, c.us.url+"bench", key, paths)
		if err != nil {
			return fmt.Errorf("from us-1: %w", err)
		}
		near = minPositive(near, t)
		t2, err := s.substitute(c.usHost, lone.url+"bench", loneKey, paths)
		if err != nil {
			return fmt.Errorf("from the lone node: %w", err)
		}
		loneTime = minPositive(loneTime, t2)
		log.Printf("distance, round %d: from us-1 %s, from the lone node %s", r+1, t.Round(10*time.Millisecond), t2.Round(10*time.Millisecond))
	}
	after, err := c.us.metrics(readThrough)
	if err != nil {
		return err
	}
	if got := after[readThrough] - before[readThrough]; got != 0 {
		return fmt.Errorf("us-1 read %v NARs through from eu-1 while serving the closure: it did not hold it all", got)
	}
	far, err := s.substitute(c.usHost, fmt.Sprintf("http://%s:%d/bench", c.euHost.IP, nodePort), key, paths)
	if err != nil {
		return fmt.Errorf("from eu-1: %w", err)
	}
	log.Printf("distance: from eu-1 across the WAN %s", far.Round(10*time.Millisecond))

	s.notes = append(s.notes, fmt.Sprintf("distance: %d generated paths, %.1f MiB of NAR, %d references among them, "+
		"pushed with `nix copy --to` at eu-1 (%s; to the lone node %s); substituted on us-1's host with `nix-store --store EMPTY -r` of every path, "+
		"Nix's defaults, a fresh narinfo disk cache each run; near runs: least of %d", n, mib(total), refs,
		pushed.Round(100*time.Millisecond), lonePushed.Round(100*time.Millisecond), nearRounds))
	figure := fmt.Sprintf("distance: substitute %d paths from the us node after replication (Garret)", n)
	s.rows = append(s.rows,
		fasterRow(figure+" vs from the eu node across 150 ms RTT, s", near, far, 20),
		timeRow(figure+" vs a lone node, no WAN, s", near, loneTime, 1.3))
	return nil
}

// nearRounds is how many times the near substitutions run.
const nearRounds = 5

func minPositive(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}
