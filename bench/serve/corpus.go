package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/garret-cache/garret/test/e2e/wan"
)

// parts is how many disjoint sub-closures the corpus splits into for the
// 8-way push: generated path i references only paths of its own residue
// class i mod parts, so each part is closed under references.
const parts = 8

// corpus is the set of store paths every phase works on.
type corpus struct {
	paths     []string         // references before referrers
	narSize   map[string]int64 // NarSize by store path
	total     int64            // Σ NarSize
	treePaths int              // paths added from trees
	genPaths  int              // generated paths
	treeBytes int64
	trees     []string // the trees entries came from
	refs      int      // references between corpus paths
	built     time.Duration
}

// part returns the store paths of sub-closure w (0 ≤ w < parts).
func (c *corpus) part(w int) []string {
	var out []string
	for i, p := range c.paths[:c.treePaths] {
		if i%parts == w {
			out = append(out, p)
		}
	}
	for i, p := range c.paths[c.treePaths:] {
		if i%parts == w {
			out = append(out, p)
		}
	}
	return out
}

// env runs nix with a configuration fit for root without a daemon, and with
// a narinfo disk cache of the run's own.
type env struct {
	dir    string
	nixEnv []string
}

func newEnv(dir string) *env {
	return &env{dir: dir, nixEnv: append(os.Environ(),
		"NIX_CONFIG=experimental-features = nix-command\nsandbox = false\nbuild-users-group =\nsubstituters =\n"+
			"narinfo-cache-negative-ttl = 0\nnarinfo-cache-positive-ttl = 0\nmax-jobs = 4",
		"XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))}
}

func (e *env) nix(name string, args ...string) (string, error) {
	return e.nixWith(nil, name, args...)
}

// nixWith runs a nix command with extra environment variables.
func (e *env) nixWith(extra []string, name string, args ...string) (string, error) {
	return e.nixOn(nil, extra, name, args...)
}

// nixOn runs a nix command on an emulated WAN host (nil: this machine),
// with extra environment variables; it gives up after 10 minutes.
func (e *env) nixOn(h *wan.Host, extra []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if h != nil {
		cmd = h.Command(ctx, name, args...)
	}
	cmd.Env = append(slices.Clone(e.nixEnv), extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args[:min(3, len(args))], " "), err, msg)
	}
	return stdout.String(), nil
}

// buildCorpus adds tree entries to the store until, with the generated
// closure, the corpus reaches opts.corpusMiB of NAR, then builds the
// generated closure on top of them.
func buildCorpus(e *env, o options) (*corpus, error) {
	start := time.Now()
	genEstimate := int64(o.generated) * 90 << 10 // ~90 KiB of NAR per generated path
	entries, trees, err := pickEntries(expandTrees(o.trees), o.corpusMiB<<20-genEstimate)
	if err != nil {
		return nil, err
	}
	log.Printf("corpus: adding %d tree entries to the store (nix-store --add)", len(entries))
	out, err := e.nix("nix-store", append([]string{"--add"}, entries...)...)
	if err != nil {
		return nil, err
	}
	var treePaths []string
	for _, p := range strings.Fields(out) {
		if !slices.Contains(treePaths, p) { // identical entries add one path
			treePaths = append(treePaths, p)
		}
	}
	log.Printf("corpus: building %d generated paths (nix-build)", o.generated)
	gen, refs, err := buildGenerated(e, "generated", o.generated, o.seed, treePaths)
	if err != nil {
		return nil, err
	}
	c := &corpus{paths: append(treePaths, gen...), treePaths: len(treePaths), genPaths: len(gen), trees: trees, refs: refs}
	if c.narSize, err = narSizes(e, c.paths); err != nil {
		return nil, err
	}
	for i, p := range c.paths {
		c.total += c.narSize[p]
		if i < c.treePaths {
			c.treeBytes += c.narSize[p]
		}
	}
	c.built = time.Since(start)
	log.Printf("corpus: %d paths (%d from trees, %d generated), %.0f MiB of NAR, in %s",
		len(c.paths), c.treePaths, c.genPaths, mib(c.total), c.built.Round(time.Second))
	return c, nil
}

func expandTrees(list string) []string {
	home, _ := os.UserHomeDir()
	var out []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(t, "~/"); ok {
			t = filepath.Join(home, rest)
		}
		out = append(out, t)
	}
	return out
}

// storeName is what Nix accepts as a store path name.
var storeName = regexp.MustCompile(`^[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]*$`)

// pickEntries lists the entries (top-level files and directories, not
// symlinks) of the trees, in order, until their sizes add up to budget.
// Each becomes one store path, as a package would: the Go toolchain's src,
// pkg and bin, each shared library, each directory of /usr/share.
func pickEntries(trees []string, budget int64) (entries, used []string, err error) {
	var sum int64
	for _, t := range trees {
		des, err := os.ReadDir(t)
		if err != nil {
			log.Printf("corpus: skipping %s: %v", t, err)
			continue
		}
		used = append(used, t)
		for _, de := range des {
			if sum >= budget {
				return entries, used, nil
			}
			if !de.IsDir() && !de.Type().IsRegular() || !storeName.MatchString(de.Name()) {
				continue
			}
			size, ok := treeSize(filepath.Join(t, de.Name()))
			if !ok || size == 0 {
				continue
			}
			entries = append(entries, filepath.Join(t, de.Name()))
			sum += size
		}
	}
	if sum < budget {
		return nil, nil, fmt.Errorf("the trees hold only %.0f MiB; add more with -trees", mib(sum))
	}
	return entries, used, nil
}

// treeSize sums the sizes of the regular files under p; ok is false if the
// tree holds anything nix-store --add refuses (sockets, devices, FIFOs) or
// cannot be read.
func treeSize(p string) (int64, bool) {
	var sum int64
	err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			sum += info.Size()
		case t.IsDir(), t&fs.ModeSymlink != 0:
		default:
			return fmt.Errorf("%s: special file", p)
		}
		return nil
	})
	return sum, err == nil
}

// buildGenerated builds n small derivations (from name.nix in the work dir):
// text (compressible) and random bytes, 2–3 references to earlier generated paths of the same residue class
// mod parts, and for every third path one tree path of that class. Their
// store paths depend only on seed, so a second run reuses them.
func buildGenerated(e *env, name string, n int, seed string, treePaths []string) ([]string, int, error) {
	var b strings.Builder
	refs := 0
	b.WriteString("let\n")
	for i := range n {
		var deps []string
		for _, back := range []int{1, 3, 7} {
			if j := i - back*parts; j >= 0 {
				deps = append(deps, fmt.Sprintf("g%d", j))
			}
		}
		if i%3 == 0 {
			// Tree path t with t ≡ i (mod parts), spread over the trees.
			if t := (i/3)*parts + i%parts; t < len(treePaths) {
				deps = append(deps, fmt.Sprintf("(builtins.storePath %q)", treePaths[t]))
			}
		}
		refs += len(deps)
		lines := 500 + (i*i*997)%24000
		rnd := 2 + (i*7919)%48
		fmt.Fprintf(&b, `  g%d = builtins.derivation { name = "bench-gen-%d"; system = builtins.currentSystem; builder = "/bin/sh";
    seed = %q; deps = [ %s ];
    args = [ "-c" "/bin/mkdir $out; echo $seed $deps > $out/refs; /usr/bin/seq 1 %d > $out/seq; /bin/dd if=/dev/urandom of=$out/rnd bs=1024 count=%d 2>/dev/null" ]; };
`, i, i, seed, strings.Join(deps, " "), lines, rnd)
	}
	b.WriteString("in [")
	for i := range n {
		fmt.Fprintf(&b, " g%d", i)
	}
	b.WriteString(" ]\n")
	file := filepath.Join(e.dir, name+".nix")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return nil, 0, err
	}
	out, err := e.nix("nix-build", file, "--no-out-link")
	if err != nil {
		return nil, 0, err
	}
	paths := strings.Fields(out)
	if len(paths) != n {
		return nil, 0, fmt.Errorf("nix-build gave %d paths, want %d", len(paths), n)
	}
	return paths, refs, nil
}

// narSizes asks nix for every path's NarSize (2.8 prints a list, 2.19 and
// later an object keyed by path).
func narSizes(e *env, paths []string) (map[string]int64, error) {
	out, err := e.nix("nix", append([]string{"path-info", "--json"}, paths...)...)
	if err != nil {
		return nil, err
	}
	type info struct {
		Path    string `json:"path"`
		NarSize int64  `json:"narSize"`
	}
	sizes := map[string]int64{}
	var list []info
	if err := json.Unmarshal([]byte(out), &list); err == nil {
		for _, i := range list {
			sizes[i.Path] = i.NarSize
		}
	} else {
		var byPath map[string]info
		if err := json.Unmarshal([]byte(out), &byPath); err != nil {
			return nil, fmt.Errorf("nix path-info --json: %w", err)
		}
		for p, i := range byPath {
			sizes[p] = i.NarSize
		}
	}
	for _, p := range paths {
		if sizes[p] == 0 {
			return nil, fmt.Errorf("nix path-info: no NarSize for %s", p)
		}
	}
	return sizes, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
