package main

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestCompletedPath(t *testing.T) {
	base := "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10"
	for _, tc := range []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: base + ".lock", Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: base + ".lock", Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: base, Op: fsnotify.Remove}, false},
		{fsnotify.Event{Name: base + ".drv.lock", Op: fsnotify.Remove}, false},
		{fsnotify.Event{Name: "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-src-source.lock", Op: fsnotify.Remove}, false},
	} {
		if _, ok := completedPath(tc.ev); ok != tc.want {
			t.Errorf("%v: %v", tc.ev, ok)
		}
	}
}

// TestBatcher_FlatMemory feeds 200k paths (many repeated) through the
// batcher: batches stay bounded, the remembered set stays at its cap, and the
// heap does not grow with the number of paths seen.
func TestBatcher_FlatMemory(t *testing.T) {
	b := newBatcher(4096, 1000, 5*time.Millisecond, time.Second)
	in := make(chan string, 1024)
	var pushed, maxBatch int
	var heapAfter10k uint64
	go func() {
		for i := range 200_000 {
			in <- fmt.Sprintf("/nix/store/%032d-path-%d", i%150_000, i%150_000)
			if i == 10_000 {
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				heapAfter10k = m.HeapInuse
			}
		}
		close(in)
	}()
	err := b.run(in, func(batch []string) error {
		pushed += len(batch)
		maxBatch = max(maxBatch, len(batch))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if maxBatch > 1000 || b.recent.len() != 4096 {
		t.Fatalf("max batch %d, remembered %d", maxBatch, b.recent.len())
	}
	if pushed < 150_000 {
		t.Fatalf("only %d paths pushed", pushed)
	}
	if m.HeapInuse > heapAfter10k+8<<20 {
		t.Fatalf("heap grew from %d to %d bytes", heapAfter10k, m.HeapInuse)
	}
}
