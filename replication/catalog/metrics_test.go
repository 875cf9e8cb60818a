package catalog

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCatalog_Metrics: the catalog's series are on the registry it was
// given and follow what it applies.
func TestCatalog_Metrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := startNodeWith(t, t.TempDir(), true, Deps{Metrics: reg}).cat
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
