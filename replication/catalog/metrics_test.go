package catalog

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/garret-cache/garret/replication/p2p"
)

// TestCatalog_Metrics: the catalog's series are on the registry it was
// given and follow what it applies.
func TestCatalog_Metrics(t *testing.T) {
	dir := t.TempDir()
	h, id := newHost(t, dir)
	tr, err := p2p.NewRaftTransport(h, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig(filepath.Join(dir, "catalog"))
	cfg.NodeID, cfg.Bootstrap = id.String(), true
	reg := prometheus.NewRegistry()
	c, err := Open(cfg, Deps{Transport: tr, Log: quiet, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitLeader(t, c)
	if err := c.CreateCache(context.Background(), Cache{Name: "m", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c.metrics.applySeconds); n != 1 {
		t.Fatalf("apply histogram: %d series", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got["garret_catalog_applied_index"] < 1 || got["garret_catalog_leader"] != 1 || got["garret_catalog_term"] < 1 ||
		got["garret_catalog_apply_seconds"] < 1 || got["garret_catalog_entry_commands"] < 1 {
		t.Fatalf("catalog series: %v", got)
	}
}
