package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/garret-cache/garret/replication/catalog"
)

// statusTimeout bounds how long the cluster status waits for every node.
const statusTimeout = 2 * time.Second

// queryStatuses asks every node for its Raft progress at once; a node that
// does not answer within statusTimeout is missing from the result.
func (c *Controller) queryStatuses(ctx context.Context, ids []string) map[string]catalog.Progress {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]catalog.Progress{}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.catalog.QueryProgress(ctx, id)
			if err != nil {
				c.log.Debug("no Raft status from a node", "peer_id", id, "err", err)
				return
			}
			mu.Lock()
			out[id] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
