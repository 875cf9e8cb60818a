package membership

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/garret-cache/garret/internal/eventually"
)

func startIn(t *testing.T, name, region string, key []byte) *Membership {
	t.Helper()
	m, err := New(Config{NodeName: name, SecretKey: key, Meta: Meta{PeerID: "id-" + name, Region: region}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Leave(0) })
	return m
}

// gossipSeries gathers the collector's series as "name{label=value,…}" → value.
func gossipSeries(t *testing.T, m *Membership) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			out[seriesName(mf.GetName(), s)] = s.GetGauge().GetValue()
		}
	}
	return out
}

func seriesName(name string, s *dto.Metric) string {
	var ls []string
	for _, l := range s.GetLabel() {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	return name + "{" + strings.Join(ls, ",") + "}"
}

// TestMembership_Metrics: three members in two regions; the members gauge
// counts them by region and state, the RTT gauge has each other region's
// probes; a graceful leave shows as left, a crash as dead,
// and neither has an RTT any more.
func TestMembership_Metrics(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a := startIn(t, "a", "eu", key)
	b, c := startIn(t, "b", "us", key), startIn(t, "c", "us", key)
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.GossipAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, "a to see three alive members and probe both us members", func() bool {
		s := gossipSeries(t, a)
		return s["garret_gossip_members{region=eu,state=alive}"] == 1 && s["garret_gossip_members{region=us,state=alive}"] == 2 &&
			s["garret_gossip_rtt_members{region=us}"] == 2
	})
	s := gossipSeries(t, a)
	for _, st := range []string{"dead", "left"} {
		for _, r := range []string{"eu", "us"} {
			if v, ok := s[fmt.Sprintf("garret_gossip_members{region=%s,state=%s}", r, st)]; !ok || v != 0 {
				t.Errorf("%s %s: %v (exported %v), want 0", r, st, v, ok)
			}
		}
	}
	if rtt := s["garret_gossip_rtt_seconds{region=us}"]; rtt <= 0 || rtt > 1 {
		t.Errorf("RTT to us on loopback: %v s", rtt)
	}
	if _, ok := s["garret_gossip_rtt_seconds{region=eu}"]; ok {
		t.Errorf("an RTT to a's own region, where a is the only member: %v", s)
	}

	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "c to show as left", func() bool {
		s := gossipSeries(t, a)
		return s["garret_gossip_members{region=us,state=left}"] == 1 && s["garret_gossip_members{region=us,state=alive}"] == 1 &&
			s["garret_gossip_rtt_members{region=us}"] == 1
	})
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "b to show as dead", func() bool {
		s := gossipSeries(t, a)
		return s["garret_gossip_members{region=us,state=dead}"] == 1 && s["garret_gossip_members{region=us,state=alive}"] == 0 &&
			s["garret_gossip_members{region=us,state=left}"] == 1 && s["garret_gossip_rtt_members{region=us}"] == 0
	})
	if s := gossipSeries(t, a); s["garret_gossip_members{region=eu,state=alive}"] != 1 {
		t.Fatalf("a itself: %v", s)
	}
}

// TestRegionLabels: region names from gossip are bounded: this node's region
// and the 63 largest others keep their names, the rest are "other"; empty,
// overlong, unprintable and non-UTF-8 regions are "none" or "invalid".
func TestRegionLabels(t *testing.T) {
	counts := map[string]map[string]int{}
	for i := range 100 {
		counts[fmt.Sprintf("r%03d", i)] = map[string]int{"alive": 1 + i%3}
	}
	counts["zz-own"] = map[string]int{"alive": 1}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a\nb", "\xff", "other"} {
		counts[bad] = map[string]int{"dead": 1}
	}
	labels := regionLabels("zz-own", counts)
	distinct := map[string]int{}
	for _, l := range labels {
		distinct[l]++
	}
	if len(distinct) != MaxRegionLabels+3 { // + other, none, invalid
		t.Fatalf("%d distinct labels: %v", len(distinct), distinct)
	}
	if labels["zz-own"] != "zz-own" {
		t.Errorf("own region: %q", labels["zz-own"])
	}
	if labels[""] != NoRegion || labels["\xff"] != InvalidRegion || labels["a\nb"] != InvalidRegion ||
		labels[strings.Repeat("x", 65)] != InvalidRegion || labels["other"] != InvalidRegion {
		t.Errorf("bad regions: %q %q %q", labels[""], labels["\xff"], labels["a\nb"])
	}
	// The largest regions (3 members: r002, r005, …) keep their names first.
	for i := 2; i < 100; i += 3 {
		if r := fmt.Sprintf("r%03d", i); labels[r] != r {
			t.Errorf("region %s with 3 members folded into %q", r, labels[r])
		}
	}
	if distinct[OtherRegion] != 100-(MaxRegionLabels-1) {
		t.Errorf("%d regions folded into other", distinct[OtherRegion])
	}
	// Stable: the same input gives the same labels.
	again := regionLabels("zz-own", counts)
	for r, l := range labels {
		if again[r] != l {
			t.Fatalf("region %q: %q then %q", r, l, again[r])
		}
	}
}
