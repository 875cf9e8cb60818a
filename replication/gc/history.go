package gc

import (
	"sync"
	"time"

	"github.com/garret-cache/garret/chunkstore"
)

// Run is one garbage collection pass on this node: what retention removed
// from the catalog (only the pass that proposed it counts the objects) and
// what the sweep freed from the local chunk store.
type Run struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	// ObjectsExpired is how many objects retention removed in this pass.
	ObjectsExpired int `json:"objects_expired"`
	chunkstore.SweepStats
	// Skipped: the sweep did not run because the catalog could not be
	// confirmed current. Err is why the pass was skipped or failed; "" when
	// it completed.
	Skipped bool   `json:"skipped,omitempty"`
	Err     string `json:"error,omitempty"`
}

// historyLen is how many runs a History keeps.
const historyLen = 16

// History keeps the last runs of a node's collector, newest first, for the
// cluster page and the cluster status. The zero value is ready to use.
type History struct {
	mu   sync.Mutex
	runs []Run
}

// Add records a finished run, dropping the oldest beyond the bound; a nil
// History keeps nothing.
func (h *History) Add(r Run) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs = append([]Run{r}, h.runs...)
	if len(h.runs) > historyLen {
		h.runs = h.runs[:historyLen]
	}
}

// Runs returns a copy of the recorded runs, newest first.
func (h *History) Runs() []Run {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Run(nil), h.runs...)
}
