package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// pushPhase times three pushes of the whole corpus, each into an empty
// destination: `nix copy --to file://` (the peer), `nix copy --to` a fresh
// garretd, and `garret push -j 8` to another fresh garretd. It does so
// -push-rounds times, interleaved, and keeps each one's least time: on a
// shared machine other load only ever adds time.
func (s *suite) pushPhase() error {
	c := s.corpus
	var fileTimes, copyTimes, pushTimes []time.Duration
	for r := range s.opts.pushRounds {
		log.Printf("push, round %d: nix copy --to file://…?compression=zstd", r+1)
		dir := filepath.Join(s.env.dir, fmt.Sprintf("filecache-%d", r))
		t, err := s.writeFileCache(dir)
		if err != nil {
			return err
		}
		fileTimes = append(fileTimes, t)
		if s.fileCache == "" {
			s.fileCache = dir // nginx serves the first
		} else if err := os.RemoveAll(dir); err != nil {
			return err
		}

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
		start := time.Now()
		if _, err := s.env.nix("nix", append([]string{"copy", "--option", "netrc-file", netrc,
			"--to", g.url + "upload/bench?compression=zstd"}, c.paths...)...); err != nil {
			return err
		}
		copyTimes = append(copyTimes, time.Since(start))
		g.stop()

		log.Printf("push, round %d: garret push -j 8", r+1)
		g, err = startGarret(s, fmt.Sprintf("garret-push-%d", r))
		if err != nil {
			return err
		}
		t, err = s.garretPush(g, 8)
		if err != nil {
			return err
		}
		pushTimes = append(pushTimes, t)
		g.stop()
		log.Printf("push, round %d: file:// %s, nix copy %s, garret push %s", r+1,
			fileTimes[r].Round(100*time.Millisecond), copyTimes[r].Round(100*time.Millisecond), t.Round(100*time.Millisecond))
	}
	least := fmt.Sprintf(", s (least of %d)", s.opts.pushRounds)
	if s.opts.pushRounds == 1 {
		least = ", s"
	}
	s.rows = append(s.rows,
		timeRow(fmt.Sprintf("push %.0f MiB: `nix copy --to` (Garret) vs `--to file://`", mib(c.total))+least,
			slices.Min(copyTimes), slices.Min(fileTimes), 1.2),
		timeRow("push: `garret push -j 8` (Garret) vs `nix copy --to file://`"+least, slices.Min(pushTimes), slices.Min(fileTimes), 0))
	return nil
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
