package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	v1 "github.com/garret-cache/garret/api/v1"
)

// progress reports a push: bars on a terminal, one line per path otherwise.
type progress interface {
	// begin returns a wrapper for the path's NAR stream (called per attempt).
	begin(in pathInfo) func(io.Reader) io.Reader
	end(in pathInfo, res v1.UploadPathResult, err error)
	wait()
}

func newProgress(total int64) progress {
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return newBars(total)
	}
	return &lines{}
}

// lines prints one line per finished path (for logs and CI).
type lines struct{ mu sync.Mutex }

func (l *lines) begin(pathInfo) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader { return r }
}

func (l *lines) end(in pathInfo, res v1.UploadPathResult, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		fmt.Printf("❌ %s: %v\n", in.Path, err)
		return
	}
	fmt.Printf("✅ %s (%s, %s)\n", in.Path, mib(in.NarSize), res.Kind)
}

func (l *lines) wait() {}

// bars draws an overall bar (bytes) and one bar per active upload.
type bars struct {
	p       *mpb.Progress
	overall *mpb.Bar
	mu      sync.Mutex
	active  map[string]*mpb.Bar
	failed  []string
}

func newBars(total int64) *bars {
	p := mpb.New(mpb.WithWidth(32), mpb.WithOutput(os.Stdout))
	overall := p.AddBar(total,
		mpb.PrependDecorators(decor.Name("total ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30), decor.Percentage(decor.WCSyncSpace)))
	return &bars{p: p, overall: overall, active: map[string]*mpb.Bar{}}
}

func (b *bars) begin(in pathInfo) func(io.Reader) io.Reader {
	b.mu.Lock()
	bar, ok := b.active[in.Path]
	if !ok {
		bar = b.p.AddBar(in.NarSize, mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name(shortName(in.Path), decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
			mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace)))
		b.active[in.Path] = bar
	}
	b.mu.Unlock()
	bar.SetCurrent(0)
	return func(r io.Reader) io.Reader { return &countingReader{r: r, bars: []*mpb.Bar{bar, b.overall}} }
}

func (b *bars) end(in pathInfo, _ v1.UploadPathResult, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bar := b.active[in.Path]
	delete(b.active, in.Path)
	if err != nil {
		b.failed = append(b.failed, fmt.Sprintf("❌ %s: %v", in.Path, err))
		bar.Abort(true)
		return
	}
	bar.SetTotal(-1, true)
}

func (b *bars) wait() {
	b.overall.SetTotal(-1, true)
	b.p.Wait()
	for _, f := range b.failed {
		fmt.Println(f)
	}
}

func shortName(p string) string {
	base := p[len(p)-min(len(p), 40):]
	if i := len(p) - len(base); i > 0 {
		return "…" + base
	}
	return base
}

type countingReader struct {
	r    io.Reader
	bars []*mpb.Bar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, b := range c.bars {
		b.IncrInt64(int64(n))
	}
	return n, err
}
