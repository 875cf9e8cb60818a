package api

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/nixcompress"
)

// TestDecoderMemory_BudgetRefuses: an xz NAR (8 MiB dictionary) waits for
// its share of the node's decoder memory, is a 503 when other uploads keep
// it for the body idle timeout and goes through once they are done; a
// stream that needs more than the whole budget is a 413.
func TestDecoderMemory_BudgetRefuses(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DecoderMemory, cfg.BodyIdleTimeout = 12<<20, 300*time.Millisecond
	e := newTestEnvWith(t, cfg)
	e.createCache("main", false)
	nar := dirNAR("budget", "x")
	file := xzOf(t, nar)
	h, _ := testPath("budget")
	url := "/main/nar/" + h + strings.Repeat("0", 20) + ".nar.xz"

	// Another upload's xz decoder holds 8 MiB.
	other, err := nixcompress.NewBudgetReader(context.Background(), nixcompress.XZ, bytes.NewReader(file), e.api.decoders)
	if err == nil {
		_, err = other.Read(make([]byte, 1))
	}
	if err != nil || e.api.decoders.InUse() != 8<<20 {
		t.Fatalf("the other decoder: %v, %d bytes held", err, e.api.decoders.InUse())
	}
	start := time.Now()
	st, b := e.do("PUT", url, e.root, bytes.NewReader(file), nil)
	if st != 503 || !strings.Contains(string(b), "decoder memory") {
		t.Fatalf("xz NAR on a busy budget: %d %s; want 503", st, b)
	}
	if took := time.Since(start); took < cfg.BodyIdleTimeout {
		t.Fatalf("refused after %v, before waiting %v", took, cfg.BodyIdleTimeout)
	}
	st, b = e.do("PUT", "/main/log/"+h+"-budget.drv", e.root, bytes.NewReader(xzOf(t, []byte("a log\n"))), map[string]string{"Content-Encoding": "xz"})
	if st != 503 {
		t.Fatalf("xz-encoded log on a busy budget: %d %s; want 503", st, b)
	}
	other.Close()
	if st, b := e.do("PUT", url, e.root, bytes.NewReader(file), nil); st != 200 {
		t.Fatalf("xz NAR once the budget is free: %d %s", st, b)
	}
	if n := e.api.decoders.InUse(); n != 0 {
		t.Fatalf("%d bytes of decoder memory still held after the uploads", n)
	}

	cfg.DecoderMemory = 4 << 20
	small := newTestEnvWith(t, cfg)
	small.createCache("main", false)
	st, b = small.do("PUT", url, small.root, bytes.NewReader(file), nil)
	if st != 413 || !strings.Contains(string(b), "PayloadTooLarge") {
		t.Fatalf("8 MiB dictionary on a 4 MiB budget: %d %s; want 413", st, b)
	}
}
