package catalog

import (
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the catalog's Prometheus series (Deps.Metrics).
type metrics struct {
	applySeconds prometheus.Histogram // one entry's apply and commit
	batchSize    prometheus.Histogram // commands per entry
	skipped      prometheus.Counter   // commands skipped as unknown or malformed
	stalls       prometheus.Counter   // entries that met a state write error
}

func newMetrics(reg prometheus.Registerer, c *Catalog) (*metrics, error) {
	const ns, sub = "garret", "catalog"
	m := &metrics{
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "apply_seconds",
			Help: "Time to apply and commit the Raft log entries committed together (one synced write) to the catalog state.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "entry_commands",
			Help: "Commands per applied log entry.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "skipped_commands_total",
			Help: "Commands this node could not apply (unknown type or malformed) and skipped."}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "apply_write_errors_total",
			Help: "Attempts to write an applied entry that failed (the entry is retried)."}),
	}
	if reg == nil {
		return m, nil
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, f)
	}
	raftNum := func(f func(r *raft.Raft) uint64) func() float64 {
		return func() float64 {
			if c.raft == nil {
				return 0
			}
			return float64(f(c.raft))
		}
	}
	cols := []prometheus.Collector{m.applySeconds, m.batchSize, m.skipped, m.stalls,
		gauge("applied_index", "Last log index applied to this node's catalog state.", func() float64 { return float64(c.fsm.applied.Load()) }),
		gauge("commit_index", "Raft commit index as this node knows it.", raftNum(func(r *raft.Raft) uint64 { return r.CommitIndex() })),
		gauge("term", "Current Raft term.", raftNum(func(r *raft.Raft) uint64 { return r.CurrentTerm() })),
		gauge("leader", "1 when this node is the Raft leader.", func() float64 {
			if c.raft != nil && c.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("leader_known", "1 when this node knows a Raft leader (itself or another server); 0 during an election or when cut off.",
			func() float64 {
				if c.raft == nil {
					return 0
				}
				if addr, _ := c.raft.LeaderWithID(); addr == "" {
					return 0
				}
				return 1
			}),
		gauge("leader_contact_age_seconds", "Time since a follower last heard from the leader (0 on the leader, and before any contact).",
			func() float64 {
				if c.raft == nil || c.raft.State() == raft.Leader {
					return 0
				}
				last := c.raft.LastContact()
				if last.IsZero() {
					return 0
				}
				return time.Since(last).Seconds()
			}),
		raftState{c: c, desc: prometheus.NewDesc(ns+"_"+sub+"_raft_state",
			"This node's Raft state: 1 for the current one of follower, candidate, leader and shutdown, 0 for the others.",
			[]string{"state"}, nil)},
	}
	for _, col := range cols {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// raftStates are the values of garret_catalog_raft_state's state label,
// every one exported on every scrape so a dashboard can show the current
// one and a query can count followers without gaps.
var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

// raftState exports garret_catalog_raft_state{state}.
type raftState struct {
	c    *Catalog
	desc *prometheus.Desc
}

func (r raftState) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r raftState) Collect(ch chan<- prometheus.Metric) {
	cur := raft.Shutdown // no Raft (yet, or any more)
	if r.c.raft != nil {
		cur = r.c.raft.State()
	}
	for _, st := range raftStates {
		v := 0.0
		if st == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, v, strings.ToLower(st.String()))
	}
}
