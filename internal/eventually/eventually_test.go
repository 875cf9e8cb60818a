package eventually

import (
	"testing"
	"time"
)

type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r)
}

func TestWithin(t *testing.T) {
	n := 0
	Within(t, time.Second, "three polls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("%d polls", n)
	}
	r := &recorder{TB: t}
	start := time.Now()
	func() {
		defer func() { _ = recover() }()
		Within(r, 50*time.Millisecond, "never", func() bool { return false })
	}()
	if r.failed == "" || time.Since(start) > time.Second {
		t.Fatalf("a condition that never holds: failed %q after %v", r.failed, time.Since(start))
	}
}
