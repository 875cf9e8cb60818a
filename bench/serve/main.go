package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/garret-cache/garret/test/e2e/wan"
)

// options are the suite's flags.
type options struct {
	out        string
	garretd    string
	garret     string
	corpusMiB  int64
	generated  int
	trees      string
	seed       string
	duration   time.Duration
	pushRounds int
	distPaths  int
	lagMiB     int
	only       string
	note       string
	keep       bool
	scalePaths int
	scalePprof string
	pprof      string
}

// phase is one part of the suite (issue 13's items 1–4, 5, 6 and 7); each
// appends the rows it measured.
type phase struct {
	name   string
	run    func(*suite) error
	corpus bool // needs the corpus
	wan    bool // needs the WAN emulator (root, /dev/net/tun, iproute2)
}

var phases = []phase{
	{"push", (*suite).pushPhase, true, false},
	{"reads", (*suite).readsPhase, true, false},
	{"distance", (*suite).distancePhase, false, true},
	{"lag", (*suite).lagPhase, false, true},
	{"scale", (*suite).scalePhase, false, false},
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "a quick run: -corpus-mib 160 -generated 64 -duration 2s -push-rounds 1 -distance-paths 200 -lag-mib 64 -scale-paths 20000 (unless set)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", `Markdown file the run's section is appended to ("" or "-": stdout only)`)
	flag.StringVar(&o.garretd, "garretd", "bin/garretd", "garretd binary")
	flag.StringVar(&o.garret, "garret", "bin/garret", "garret client binary")
	flag.Int64Var(&o.corpusMiB, "corpus-mib", 2100, "NAR size of the corpus to build, MiB (trees + generated)")
	flag.IntVar(&o.generated, "generated", 320, "small generated store paths with references in the corpus")
	flag.StringVar(&o.trees, "trees", "/usr/local/go,/usr/lib/x86_64-linux-gnu,/usr/share,~/go/pkg/mod",
		"trees whose entries are added to the store, in order, until the corpus is big enough")
	flag.StringVar(&o.seed, "seed", "1", "seed of the generated closure (another seed builds new paths)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "duration of each wrk measurement")
	flag.IntVar(&o.pushRounds, "push-rounds", 2, "rounds of the three pushes, interleaved; each row keeps the least time")
	flag.IntVar(&o.distPaths, "distance-paths", 240, "paths of the closure the distance phase substitutes (issue 13 asks ≥ 200)")
	flag.IntVar(&o.lagMiB, "lag-mib", 128, "MiB of random bytes (4 MiB paths) the lag phase pushes across 100 Mbit/s")
	flag.StringVar(&o.only, "only", "", "comma-separated phases to run (push, reads, distance, lag, scale); default all. "+
		"distance and lag need root, /dev/net/tun and iproute2 (the e2e tests' WAN emulator)")
	flag.StringVar(&o.note, "note", "", "a note for the run's header (e.g. what else ran on the machine)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, configs, caches)")
	flag.IntVar(&o.scalePaths, "scale-paths", 1_000_000, "store paths the scale phase commits to one node's catalog")
	flag.StringVar(&o.scalePprof, "scale-pprof", "", "serve the scale phase's first node's profiler on this loopback address (garretd --pprof-listen)")
	flag.StringVar(&o.pprof, "pprof", "", "serve the profiler of the push and reads phases' nodes (one runs at a time) on this loopback address (garretd --pprof-listen)")
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["corpus-mib"] {
			o.corpusMiB = 160
		}
		if !set["generated"] {
			o.generated = 64
		}
		if !set["duration"] {
			o.duration = 2 * time.Second
		}
		if !set["push-rounds"] {
			o.pushRounds = 1
		}
		if !set["distance-paths"] {
			o.distPaths = 200
		}
		if !set["lag-mib"] {
			o.lagMiB = 64
		}
		if !set["scale-paths"] {
			o.scalePaths = 20_000
		}
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	start := time.Now()
	var selected []phase
	for _, p := range phases {
		if o.only == "" || slices.Contains(strings.Split(o.only, ","), p.name) {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("-only %q names no phase", o.only)
	}
	if o.pushRounds < 1 || o.distPaths < 1 || o.lagMiB < 1 {
		return fmt.Errorf("-push-rounds, -distance-paths and -lag-mib must be at least 1")
	}
	for _, p := range selected {
		if why := wan.Available(); p.wan && why != "" {
			return fmt.Errorf("phase %s: %s (leave it out with -only)", p.name, why)
		}
	}
	if o.scalePaths < 1 {
		return fmt.Errorf("-scale-paths must be at least 1")
	}
	for _, b := range []*string{&o.garretd, &o.garret} {
		abs, err := filepath.Abs(*b)
		if err != nil {
			return err
		}
		*b = abs
	}
	raiseNoFile()
	dir, err := os.MkdirTemp("", "garret-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		log.Printf("work directory: %s (kept)", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	s := &suite{opts: o, env: newEnv(dir), started: start, loadStart: loadAvg()}
	defer s.stopAll()
	if slices.ContainsFunc(selected, func(p phase) bool { return p.corpus }) {
		if s.corpus, err = buildCorpus(s.env, o); err != nil {
			return err
		}
	}
	for _, p := range selected {
		log.Printf("phase %s", p.name)
		if err := p.run(s); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		s.ran = append(s.ran, p.name)
	}
	s.stopAll()
	return s.report()
}

// suite holds what the phases share: the corpus (nil when no selected
// phase needs it), the work directory, the
// servers still running and the rows measured so far.
type suite struct {
	opts      options
	env       *env
	corpus    *corpus
	rows      []row
	started   time.Time
	loadStart string
	fileCache string   // the `nix copy --to file://` cache, once written
	served    []string // what each read target serves the corpus's NARs as
	notes     []string // lines for the header, from the phases
	scale     string   // how the scale phase loaded its node (the header's line)
	ran       []string // the phases run
	stops     []func()
}

// onStop registers a server to stop when the suite ends.
func (s *suite) onStop(f func()) { s.stops = append(s.stops, f) }

func (s *suite) stopAll() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}
