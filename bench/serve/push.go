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
// garretd, and `garret push -j 8` to another fresh garretd.
func (s *suite) pushPhase() error {
	c := s.corpus
	log.Print("push: nix copy --to file://…?compression=zstd")
	fileTime, err := s.writeFileCache()
	if err != nil {
		return err
	}

	log.Print("push: nix copy --to http://garretd/upload/bench?compression=zstd")
	g, err := startGarret(s, "garret-nixcopy")
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
	copyTime := time.Since(start)
	g.stop()

	log.Print("push: garret push -j 8")
	g, err = startGarret(s, "garret-push")
	if err != nil {
		return err
	}
	pushTime, err := s.garretPush(g, 8)
	if err != nil {
		return err
	}
	g.stop()

	s.rows = append(s.rows,
		timeRow(fmt.Sprintf("push %.0f MiB: `nix copy --to` (Garret) vs `--to file://`, s", mib(c.total)), copyTime, fileTime, 1.2),
		timeRow("push: `garret push -j 8` (Garret) vs `nix copy --to file://`, s", pushTime, fileTime, 0))
	return nil
}

// writeFileCache writes the corpus with `nix copy --to file://…?compression=zstd`
// once (nginx serves it) and returns how long that took.
func (s *suite) writeFileCache() (time.Duration, error) {
	dir := filepath.Join(s.env.dir, "filecache")
	start := time.Now()
	if _, err := s.env.nix("nix", append([]string{"copy", "--to", "file://" + dir + "?compression=zstd"}, s.corpus.paths...)...); err != nil {
		return 0, err
	}
	s.fileCache = dir
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
