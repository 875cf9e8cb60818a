package node

import (
	"regexp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// registry is the node's Prometheus registry, served at /metrics. It keeps
// every collector registered on it, so MetricNames can list the series a
// node exports before any of them has a value (a vector with no label
// values yet gathers nothing).
type registry struct {
	*prometheus.Registry
	mu   sync.Mutex
	cols []prometheus.Collector
}

func newRegistry() *registry { return &registry{Registry: prometheus.NewRegistry()} }

// Register registers c and remembers it.
func (r *registry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cols = append(r.cols, c)
	r.mu.Unlock()
	return nil
}

// MustRegister registers every collector, panicking on the first failure
// (prometheus.Registerer's contract).
func (r *registry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister unregisters c and forgets it.
func (r *registry) Unregister(c prometheus.Collector) bool {
	if !r.Registry.Unregister(c) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, o := range r.cols {
		if o == c {
			r.cols = slices.Delete(r.cols, i, i+1)
			break
		}
	}
	return true
}

// descName reads a descriptor's metric name: client_golang has no accessor,
// and its String form starts `Desc{fqName: "name", …`.
var descName = regexp.MustCompile(`^Desc\{fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// names lists, sorted, the metric family names of every collector's
// descriptors and of every family gathered now (collectors that describe
// nothing still show what they collect).
func (r *registry) names() ([]string, error) {
	r.mu.Lock()
	cols := slices.Clone(r.cols)
	r.mu.Unlock()
	seen := map[string]bool{}
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range cols {
			c.Describe(ch)
		}
		close(ch)
	}()
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			seen[m[1]] = true
		}
	}
	mfs, err := r.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// MetricNames lists the metric families this node exports at /metrics, by
// the names their collectors declare, whether or not they have a value yet
// (a histogram as its base name, without _bucket, _sum and _count). The
// dashboard test (deploy/grafana) checks every query against it.
func (n *Node) MetricNames() ([]string, error) { return n.metrics.names() }
