package cluster

import (
	"context"
	"sync"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
)

// statusTimeout bounds how long the cluster status waits for every node.
const statusTimeout = 2 * time.Second

// queryStatuses asks every node for its Raft progress and its replication
// status at once; a node that does not answer within statusTimeout is
// missing from the results.
func (c *Controller) queryStatuses(ctx context.Context, ids []string) (map[string]catalog.Progress, map[string]v1.ReplicationStatus) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	progress, replication := map[string]catalog.Progress{}, map[string]v1.ReplicationStatus{}
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
			progress[id] = st
			mu.Unlock()
		}()
		if c.replication != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, err := c.replication(ctx, id); err == nil {
					mu.Lock()
					replication[id] = st
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return progress, replication
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
