package api

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/garret-cache/garret/replication/catalog"
)

// The catalog keeps no per-cache totals, so the cluster page counts: at most
// once per cacheStatsTTL, at most cacheStatsBudget objects in all (the
// catalog's walk holds its read lock for one page at a time, never for a
// whole cache). A cache the budget does not cover is shown as "at least"
// what was counted.
const (
	cacheStatsTTL    = 30 * time.Second
	cacheStatsBudget = 200_000
)

// CacheStat is one cache's objects and the sum of their NAR sizes.
type CacheStat struct {
	Name     string
	Public   bool
	Objects  int64
	NarBytes int64
	Partial  bool // the count stopped at the budget: these are lower bounds
}

// cacheStats memoises the counts.
type cacheStats struct {
	budget int // objects per count; 0: cacheStatsBudget
	mu     sync.Mutex
	at     time.Time
	stats  []CacheStat
	more   int // caches past maxWebCaches, not counted
}

// errBudgetSpent stops a count at the budget.
var errBudgetSpent = errors.New("count budget spent")

// get returns the counts, recounting when they are older than the TTL.
// Concurrent callers wait for one count.
func (cs *cacheStats) get(cat Catalog) ([]CacheStat, int, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.stats != nil && time.Since(cs.at) < cacheStatsTTL {
		return cs.stats, cs.more, nil
	}
	caches, err := cat.Caches()
	if err != nil {
		return nil, 0, err
	}
	sort.Slice(caches, func(i, j int) bool { return caches[i].Name < caches[j].Name })
	more := 0
	if len(caches) > maxWebCaches {
		more, caches = len(caches)-maxWebCaches, caches[:maxWebCaches]
	}
	budget := cs.budget
	if budget <= 0 {
		budget = cacheStatsBudget
	}
	out := make([]CacheStat, 0, len(caches))
	for _, c := range caches {
		st := CacheStat{Name: string(c.Name), Public: c.IsPublic, Partial: budget <= 0}
		if !st.Partial {
			err := cat.ForEachObject(c.Name, func(o catalog.Object) error {
				if budget <= 0 {
					st.Partial = true
					return errBudgetSpent
				}
				budget--
				st.Objects++
				st.NarBytes += o.NarSize
				return nil
			})
			if err != nil && !errors.Is(err, errBudgetSpent) {
				return nil, 0, err
			}
		}
		out = append(out, st)
	}
	cs.stats, cs.more, cs.at = out, more, time.Now()
	return out, more, nil
}
