package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// row is one line of the table: a figure, Garret's value, the peer's, their
// ratio, issue 13's target and whether Garret meets it.
type row struct {
	figure, garret, peer, ratio, target, met string
}

const none = "—"

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func ratio(g, p float64) string {
	if p == 0 {
		return none
	}
	return fmt.Sprintf("%.2f×", g/p)
}

func human(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// rateRow: higher is better; the target (if > 0) is a minimum ratio.
func rateRow(figure string, g, p, minRatio float64) row {
	r := row{figure: figure, garret: human(g), peer: human(p), ratio: ratio(g, p), target: none, met: none}
	if minRatio > 0 {
		r.target = fmt.Sprintf("≥ %.1f× peer", minRatio)
		r.met = yesNo(p > 0 && g/p >= minRatio)
	}
	return r
}

// timeRow: lower is better; the target (if > 0) is a maximum ratio of the
// peer's time; a zero peer means there is none.
func timeRow(figure string, g, p time.Duration, maxRatio float64) row {
	r := row{figure: figure, garret: fmt.Sprintf("%.1f", g.Seconds()), peer: none, ratio: none, target: none, met: none}
	if p > 0 {
		r.peer, r.ratio = fmt.Sprintf("%.1f", p.Seconds()), ratio(g.Seconds(), p.Seconds())
	}
	if maxRatio > 0 {
		r.target = fmt.Sprintf("≤ %.1f× peer's time", maxRatio)
		r.met = yesNo(p > 0 && g.Seconds()/p.Seconds() <= maxRatio)
	}
	return r
}

// fasterRow: lower is better; the target (if > 0) is a minimum speed-up
// over the peer (its time ÷ Garret's).
func fasterRow(figure string, g, p time.Duration, minSpeedup float64) row {
	r := timeRow(figure, g, p, 0)
	if g > 0 && p > 0 {
		r.ratio += fmt.Sprintf(" (%.1f× faster)", p.Seconds()/g.Seconds())
	}
	if minSpeedup > 0 {
		r.target = fmt.Sprintf("≥ %.0f× faster than peer", minSpeedup)
		r.met = yesNo(g > 0 && p.Seconds()/g.Seconds() >= minSpeedup)
	}
	return r
}

func ms(us int64) string { return fmt.Sprintf("%.2f", float64(us)/1000) }

// latencyRow shows p50 / p99 in ms; the ratio and target are the p99's.
func latencyRow(figure string, g, p wrkResult, maxP99Ratio float64) row {
	r := row{figure: figure + ", ms", garret: ms(g.P50US) + " / " + ms(g.P99US), peer: ms(p.P50US) + " / " + ms(p.P99US),
		ratio: ratio(float64(g.P99US), float64(p.P99US)) + " (p99)", target: none, met: none}
	if maxP99Ratio > 0 {
		r.target = fmt.Sprintf("p99 ≤ %.0f× peer's", maxP99Ratio)
		r.met = yesNo(p.P99US > 0 && float64(g.P99US)/float64(p.P99US) <= maxP99Ratio)
	}
	return r
}

func joinCounts(c []int64) string {
	s := make([]string, len(c))
	for i, n := range c {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " / ")
}

// errorsRow lists socket errors + non-2xx responses per run; the target is
// none at the last (1000 connections).
func errorsRow(figure string, g, p []wrkResult) row {
	ge, pe := make([]int64, len(g)), make([]int64, len(p))
	for i := range g {
		ge[i], pe[i] = g[i].errors(), p[i].errors()
	}
	return row{figure: figure, garret: joinCounts(ge), peer: joinCounts(pe), ratio: none,
		target: "0 at 1000", met: yesNo(ge[len(ge)-1] == 0)}
}

func countRow(figure string, g, p []int64) row {
	return row{figure: figure, garret: joinCounts(g), peer: joinCounts(p), ratio: none, target: none, met: none}
}

// memRow: bytes shown in MiB; the target is a maximum for Garret, in MiB.
func memRow(figure string, g, p int64, maxMiB float64) row {
	r := row{figure: figure, garret: fmt.Sprintf("%.0f", mib(g)), peer: none, ratio: none,
		target: fmt.Sprintf("≤ %.0f MiB", maxMiB), met: yesNo(g > 0 && mib(g) <= maxMiB)}
	if p > 0 {
		r.peer, r.ratio = fmt.Sprintf("%.0f", mib(p)), ratio(float64(g), float64(p))
	}
	return r
}

// report prints the run's section and appends it to opts.out.
func (s *suite) report() error {
	c := s.corpus
	var b strings.Builder
	// The items each phase measures.
	var items []string
	for _, it := range []struct{ phases, item string }{{"push reads", "1–4"}, {"distance", "5"}, {"lag", "6"}, {"scale", "7"}} {
		if slices.ContainsFunc(strings.Fields(it.phases), func(p string) bool { return slices.Contains(s.ran, p) }) {
			items = append(items, it.item)
		}
	}
	word := "items"
	if len(items) == 1 && !strings.Contains(items[0], "–") {
		word = "item"
	}
	fmt.Fprintf(&b, "\n## %s: `make bench` (bench/serve, issue 13 %s %s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		word, strings.Join(items, ", "))
	fmt.Fprintf(&b, "- machine: %d cores, %s; %s; commit %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), commit())
	fmt.Fprintf(&b, "- tools: %s; %s; %s\n", firstLine("nix", "--version"), firstLine(nginxBin(), "-v"), wrkVersion())
	if c != nil {
		fmt.Fprintf(&b, "- corpus: %d store paths, %.0f MiB of NAR: %d entries of %s added with `nix-store --add` (%.0f MiB), "+
			"and %d generated paths with %d references among them and to the tree paths\n",
			len(c.paths), mib(c.total), c.treePaths, strings.Join(c.trees, ", "), mib(c.treeBytes), c.genPaths, c.refs)
	}
	if len(s.served) > 0 {
		fmt.Fprintf(&b, "- reads: wrk over loopback, %s per run, Lua script cycling through every narinfo (or NAR) URL of the corpus; "+
			"`-t2` (`-t1` at 1 connection); the peer is nginx serving the `nix copy --to file://…?compression=zstd` cache of the corpus; "+
			"NARs as served (zstd): %s\n", s.opts.duration, strings.Join(s.served, ", "))
	}
	if s.scale != "" {
		fmt.Fprintf(&b, "- scale: %s\n", s.scale)
	}
	corpusTime := "no corpus"
	if c != nil {
		corpusTime = "corpus " + c.built.Round(time.Second).String()
	}
	fmt.Fprintf(&b, "- load average (1/5/15 min) at start %s, at end %s; the suite ran %s (%s)\n",
		s.loadStart, loadAvg(), time.Since(s.started).Round(time.Second), corpusTime)
	for _, n := range s.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if s.opts.note != "" {
		fmt.Fprintf(&b, "- note: %s\n", s.opts.note)
	}
	b.WriteString("\n| figure | Garret | peer | ratio | target | met |\n|---|---:|---:|---:|---|---|\n")
	for _, r := range s.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.figure, r.garret, r.peer, r.ratio, r.target, r.met)
	}
	fmt.Print(b.String())
	if s.opts.out == "" || s.opts.out == "-" {
		return nil
	}
	f, err := os.OpenFile(s.opts.out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func commit() string {
	rev := firstLine("git", "rev-parse", "--short", "HEAD")
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
		rev += "-dirty"
	}
	return rev
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
