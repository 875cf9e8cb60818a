package node

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/garret-cache/garret/internal/eventually"
)

// TestNode_MetricNames: a one-node cluster declares every family issue 12
// asks for — vectors with no value yet included — and /metrics shows this
// node as an alive gossip member of its region and as the Raft leader.
func TestNode_MetricNames(t *testing.T) {
	n := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), 0)
	names, err := n.MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"garret_http_requests_total", "garret_http_request_duration_seconds", "garret_http_request_body_bytes_total",
		"garret_http_response_body_bytes_total", "garret_pushes_total", "garret_ingest_dedup_bytes_total", "garret_ingest_dedup_chunks_total",
		"garret_catalog_raft_state", "garret_catalog_leader", "garret_catalog_leader_known", "garret_catalog_term",
		"garret_catalog_commit_index", "garret_catalog_applied_index",
		"garret_gossip_members", "garret_gossip_rtt_seconds", // no peer: no RTT series yet, but declared
		"garret_syncer_backlog_bytes", "garret_syncer_frame_bytes_total", "garret_chunkstore_segment_bytes",
		"garret_chunkstore_segment_garbage_bytes", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("MetricNames lacks %s", want)
		}
	}
	eventually.True(t, "this node alive in gossip and leading", func() bool {
		resp, err := http.Get(n.URL() + "metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `garret_gossip_members{region="eu",state="alive"} 1`) &&
			strings.Contains(string(b), `garret_catalog_raft_state{state="leader"} 1`) &&
			strings.Contains(string(b), `garret_catalog_leader_known 1`)
	})
}

// TestRegistry_NamesFromDescriptors: a vector without values is listed (by
// its descriptor), and an unregistered collector is not.
func TestRegistry_NamesFromDescriptors(t *testing.T) {
	r := newRegistry()
	unseen := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "garret_test_unseen_total", Help: "x"}, []string{"l"})
	gone := prometheus.NewGauge(prometheus.GaugeOpts{Name: "garret_test_gone", Help: "x"})
	r.MustRegister(unseen, gone)
	if !r.Unregister(gone) {
		t.Fatal("unregister")
	}
	names, err := r.names()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"garret_test_unseen_total"}) {
		t.Fatalf("names %v", names)
	}
}
