// Package eventually is the tests' one way to wait for a condition: poll
// it, with a deadline, and fail the test naming what never happened.
package eventually

import (
	"testing"
	"time"
)

// Default is the deadline of True: long enough for elections and gossip
// under the race detector on 2 cores.
const Default = 20 * time.Second

// True polls cond every 10 ms until it holds, failing t after Default.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Default, what, cond)
}

// Within polls cond until it holds, failing t after d. The poll interval
// grows from 10 ms to at most 100 ms, so long waits do not spin.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	wait := 10 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(wait)
		wait = min(wait*3/2, 100*time.Millisecond)
	}
}
