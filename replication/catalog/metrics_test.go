package catalog

import (
	"context"
	"strings"
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
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetGauge() != nil:
				got[name] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got["garret_catalog_applied_index"] < 1 || got["garret_catalog_leader"] != 1 || got["garret_catalog_term"] < 1 ||
		got["garret_catalog_apply_seconds"] < 1 || got["garret_catalog_entry_commands"] < 1 {
		t.Fatalf("catalog series: %v", got)
	}
	// Raft's state, whether a leader is known, and the commit index as a
	// lone leader has them.
	want := map[string]float64{
		"garret_catalog_raft_state{state=leader}": 1, "garret_catalog_raft_state{state=follower}": 0,
		"garret_catalog_raft_state{state=candidate}": 0, "garret_catalog_raft_state{state=shutdown}": 0,
		"garret_catalog_leader_known": 1, "garret_catalog_leader_contact_age_seconds": 0,
		"garret_catalog_commit_index": float64(c.raft.CommitIndex()),
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (exported: %v), want %v", name, g, ok, v)
		}
	}
	if got["garret_catalog_commit_index"] < got["garret_catalog_applied_index"] || got["garret_catalog_commit_index"] < 2 {
		t.Errorf("commit index %v, applied %v", got["garret_catalog_commit_index"], got["garret_catalog_applied_index"])
	}
}

// TestCatalog_MetricsRaftStateFollowsRaft: after the catalog closes, the
// state gauge says shutdown and no leader is known.
func TestCatalog_MetricsRaftStateFollowsRaft(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := startNodeWith(t, t.TempDir(), true, Deps{Metrics: reg}).cat
	waitLeader(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP garret_catalog_leader_known 1 when this node knows a Raft leader (itself or another server); 0 during an election or when cut off.
# TYPE garret_catalog_leader_known gauge
garret_catalog_leader_known 0
# HELP garret_catalog_raft_state This node's Raft state: 1 for the current one of follower, candidate, leader and shutdown, 0 for the others.
# TYPE garret_catalog_raft_state gauge
garret_catalog_raft_state{state="candidate"} 0
garret_catalog_raft_state{state="follower"} 0
garret_catalog_raft_state{state="leader"} 0
garret_catalog_raft_state{state="shutdown"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "garret_catalog_raft_state", "garret_catalog_leader_known"); err != nil {
		t.Fatal(err)
	}
}

// TestCatalog_MetricsOnAFollower: a follower of a three-node group says
// follower, knows the leader, heard from it recently, and its commit and
// applied index reach the leader's.
func TestCatalog_MetricsOnAFollower(t *testing.T) {
	nodes, leader := startCluster(t, 3)
	var follower *Catalog
	for _, n := range nodes {
		if n.cat != leader {
			follower = n.cat
		}
	}
	if err := leader.CreateCache(context.Background(), Cache{Name: "f", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg, follower); err != nil {
		t.Fatal(err)
	}
	want := float64(leader.raft.CommitIndex())
	eventually(t, "the follower's gauges", func() bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				name := mf.GetName()
				for _, l := range m.GetLabel() {
					name += "{" + l.GetValue() + "}"
				}
				got[name] = m.GetGauge().GetValue()
			}
		}
		return got["garret_catalog_raft_state{follower}"] == 1 && got["garret_catalog_raft_state{leader}"] == 0 &&
			got["garret_catalog_leader"] == 0 && got["garret_catalog_leader_known"] == 1 &&
			got["garret_catalog_leader_contact_age_seconds"] > 0 && got["garret_catalog_leader_contact_age_seconds"] < 5 &&
			got["garret_catalog_commit_index"] >= want && got["garret_catalog_applied_index"] >= want
	})
}
