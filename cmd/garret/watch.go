package main

import (
	"container/list"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"

	"github.com/garret-cache/garret/internal/nixdaemon"
)

func watchCmd() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "watch-store CACHE",
		Short: "Push every new store path as it appears",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			storeDir := nixdaemon.StoreDir()
			w, err := fsnotify.NewWatcher()
			if err != nil {
				return err
			}
			defer w.Close()
			if err := w.Add(storeDir); err != nil {
				return fmt.Errorf("watching %s: %w", storeDir, err)
			}
			fmt.Printf("👀 Pushing new store paths to %q...\n", args[0])
			paths := make(chan string, 1024)
			go func() {
				defer close(paths)
				for {
					select {
					case ev, ok := <-w.Events:
						if !ok {
							return
						}
						if p, ok := completedPath(ev); ok {
							paths <- p
						}
					case err, ok := <-w.Errors:
						if !ok {
							return
						}
						fmt.Fprintf(os.Stderr, "watch: %v\n", err)
					}
				}
			}()
			b := newBatcher(4096, 1000, 2*time.Second, 10*time.Second)
			return b.run(paths, func(batch []string) error { return push(args[0], batch, o) })
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.jobs, "jobs", "j", 5, "uploads in parallel")
	f.BoolVar(&o.ignoreUpstream, "ignore-upstream-cache-filter", false, "also push paths signed by the cache's upstream keys")
	f.BoolVar(&o.noClosure, "no-closure", false, "push only the new paths, not their closures")
	_ = f.MarkHidden("no-closure")
	return cmd
}

// completedPath: Nix removes <path>.lock once <path> is valid; that is when
// it can be pushed (as attic watch-store does). Derivations and sources are skipped.
func completedPath(ev fsnotify.Event) (string, bool) {
	if !ev.Has(fsnotify.Remove) || !strings.HasSuffix(ev.Name, ".lock") {
		return "", false
	}
	p := strings.TrimSuffix(ev.Name, ".lock")
	if strings.HasSuffix(p, ".drv") || strings.HasSuffix(p, "-source") || len(filepath.Base(p)) < 33 {
		return "", false
	}
	return p, true
}

// batcher groups paths into pushes: a batch goes out after idle time with no
// new path, after maxWait, or at maxBatch paths. Memory stays flat however
// long it runs: the only state kept between batches is a bounded set of
// recently pushed paths (the server's get-missing-paths is the real record).
type batcher struct {
	recent        *boundedSet
	maxBatch      int
	idle, maxWait time.Duration
}

func newBatcher(recent, maxBatch int, idle, maxWait time.Duration) *batcher {
	return &batcher{recent: newBoundedSet(recent), maxBatch: maxBatch, idle: idle, maxWait: maxWait}
}

func (b *batcher) run(in <-chan string, flush func([]string) error) error {
	var batch []string
	var first time.Time
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	send := func() {
		if len(batch) == 0 {
			return
		}
		if err := flush(batch); err != nil {
			fmt.Fprintf(os.Stderr, "❌ push failed: %v\n", err)
		} else {
			for _, p := range batch {
				b.recent.add(p)
			}
		}
		batch = batch[:0:0] // drop the old backing array
	}
	for {
		select {
		case p, ok := <-in:
			if !ok {
				send()
				return nil
			}
			if b.recent.has(p) {
				continue
			}
			if len(batch) == 0 {
				first = time.Now()
			}
			batch = append(batch, p)
			if len(batch) >= b.maxBatch || time.Since(first) >= b.maxWait {
				send()
			}
			idle.Reset(b.idle)
		case <-idle.C:
			send()
		}
	}
}

// boundedSet remembers the last n strings added.
type boundedSet struct {
	n     int
	order *list.List
	items map[string]*list.Element
}

func newBoundedSet(n int) *boundedSet {
	return &boundedSet{n: n, order: list.New(), items: make(map[string]*list.Element, n)}
}

func (s *boundedSet) has(k string) bool { _, ok := s.items[k]; return ok }

func (s *boundedSet) add(k string) {
	if e, ok := s.items[k]; ok {
		s.order.MoveToFront(e)
		return
	}
	s.items[k] = s.order.PushFront(k)
	if s.order.Len() > s.n {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(string))
	}
}

func (s *boundedSet) len() int { return s.order.Len() }
