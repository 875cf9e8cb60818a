package nixcompress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Budget bounds the memory that the decoders of concurrent uploads hold for
// their windows and dictionaries, node-wide. A decoder reserves what the
// stream declares (an xz block's dictionary, a zstd frame's window, …)
// before its library allocates it, and gives it back when it is closed; a
// decoder that needs more than is free waits, at most Wait, for others to
// finish.
//
// A decoder holds one reservation, the largest it has needed so far. To grow
// it, it gives back what it holds and then waits for the whole new amount,
// so decoders never hold memory while waiting for more (no two of them can
// wait for each other); the budget is first come, first served.
type Budget struct {
	total int64
	wait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the waiter holds n
}

// NewBudget returns a budget of total bytes; a decoder waits at most wait
// for its share (0: not at all).
func NewBudget(total int64, wait time.Duration) *Budget {
	return &Budget{total: total, wait: wait}
}

// Total is the budget's size in bytes.
func (b *Budget) Total() int64 { return b.total }

// InUse is the number of bytes decoders hold now.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// ErrMemoryBudget wraps the error of a decoder that could not reserve its
// memory: see BudgetError.
var ErrMemoryBudget = errors.New("nixcompress: decoder memory budget")

// BudgetError is a decoder refused by its Budget. Never is true when the
// stream declares more than the whole budget (waiting cannot help);
// otherwise the budget stayed full for Wait (or the context ended) and the
// same upload can succeed later.
type BudgetError struct {
	Kind     Kind
	Need     int64 // bytes the stream declared
	Total    int64 // the budget
	Never    bool
	Waited   time.Duration
	Canceled error // the context's error when it ended the wait
}

func (e *BudgetError) Error() string {
	if e.Never {
		return fmt.Sprintf("%s stream needs %d MiB of decoder memory, more than this node's whole decoder-memory budget of %d MiB",
			e.Kind, mib(e.Need), mib(e.Total))
	}
	if e.Canceled != nil {
		return fmt.Sprintf("%s stream waited %v for %d MiB of decoder memory: %v", e.Kind, e.Waited.Round(time.Millisecond), mib(e.Need), e.Canceled)
	}
	return fmt.Sprintf("%s stream waited %v for %d MiB of decoder memory: the node's decoder-memory budget of %d MiB is in use by other uploads",
		e.Kind, e.Waited.Round(time.Millisecond), mib(e.Need), mib(e.Total))
}

func (e *BudgetError) Unwrap() error { return ErrMemoryBudget }

func mib(n int64) int64 { return (n + 1<<20 - 1) >> 20 }

// acquire takes n bytes, waiting in line for at most b.wait or until ctx ends.
func (b *Budget) acquire(ctx context.Context, k Kind, n int64) error {
	if n > b.total {
		return &BudgetError{Kind: k, Need: n, Total: b.total, Never: true}
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.total {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	var cause error
	select {
	case <-w.ready:
		return nil
	case <-timer.C:
	case <-ctx.Done():
		cause = ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted while the timer fired
		return nil
	default:
	}
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			break
		}
	}
	b.grantLocked() // the head may have changed
	return &BudgetError{Kind: k, Need: n, Total: b.total, Waited: time.Since(start), Canceled: cause}
}

// release gives back n bytes and wakes the waiters that now fit, in order.
func (b *Budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grantLocked()
}

func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.total {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

// reservation is one decoder's share of a Budget; its zero value (no
// budget) reserves nothing.
type reservation struct {
	b    *Budget
	ctx  context.Context
	kind Kind
	held int64
}

// need makes the reservation at least n bytes before the decoder allocates
// them.
func (r *reservation) need(n int64) error {
	if r == nil || r.b == nil || n <= r.held {
		return nil
	}
	if r.held > 0 {
		r.b.release(r.held)
		r.held = 0
	}
	if err := r.b.acquire(r.ctx, r.kind, n); err != nil {
		return err
	}
	r.held = n
	return nil
}

// close returns the reservation to the budget.
func (r *reservation) close() {
	if r != nil && r.b != nil && r.held > 0 {
		r.b.release(r.held)
		r.held = 0
	}
}
