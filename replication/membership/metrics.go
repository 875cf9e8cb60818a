package membership

import (
	"cmp"
	"slices"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Region label values come from other nodes' gossip metadata, so they are
// bounded: at most MaxRegionLabels distinct regions get their own value
// (this node's region first, then the regions with the most members, then
// by name), the rest are counted as OtherRegion. A region that is empty is
// NoRegion, one that is not short printable UTF-8 is InvalidRegion. Node
// names and addresses are never labels.
const (
	MaxRegionLabels = 64
	OtherRegion     = "other"
	NoRegion        = "none"
	InvalidRegion   = "invalid"
	maxRegionLen    = 64
)

// departedTTL is how long a member that died or left counts in
// garret_gossip_members: long enough for an alert on dead members to fire,
// short enough that a node replaced for good stops counting (Departed
// keeps up to 32 until they return, for the cluster page). A member that
// comes back is alive again at once.
const departedTTL = time.Hour

// memberStates are the values of garret_gossip_members' state label, each
// exported for every region shown, so a sum never has gaps.
var memberStates = []string{"alive", "dead", "left"}

var (
	descMembers = prometheus.NewDesc("garret_gossip_members",
		"Cluster members as this node's gossip sees them, by region and state (alive, including suspects; dead; left; this node included). "+
			"Dead and left members count for an hour or until they return.", []string{"region", "state"}, nil)
	descRTT = prometheus.NewDesc("garret_gossip_rtt_seconds",
		"Median of the latest gossip probe round trip to each other alive member of a region (members not yet probed left out).",
		[]string{"region"}, nil)
	descProbed = prometheus.NewDesc("garret_gossip_rtt_members",
		"Other alive members of a region with a measured round trip (what garret_gossip_rtt_seconds is the median of).",
		[]string{"region"}, nil)
)

// Collector exports this node's view of gossip as garret_gossip_members
// {region,state}, garret_gossip_rtt_seconds{region} and
// garret_gossip_rtt_members{region}.
func (m *Membership) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Membership }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMembers
	ch <- descRTT
	ch <- descProbed
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counts, rtts := c.m.snapshot(time.Now())
	labels := regionLabels(c.m.region, counts)
	members := map[string]map[string]int{}
	for region, byState := range counts {
		l := labels[region]
		if members[l] == nil {
			members[l] = map[string]int{}
		}
		for st, n := range byState {
			members[l][st] += n
		}
	}
	for l, byState := range members {
		for _, st := range memberStates {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(byState[st]), l, st)
		}
	}
	byLabel := map[string][]time.Duration{}
	for region, ds := range rtts {
		byLabel[labels[region]] = append(byLabel[labels[region]], ds...)
	}
	for l, ds := range byLabel {
		slices.Sort(ds)
		med := ds[len(ds)/2]
		if len(ds)%2 == 0 {
			med = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
		}
		ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, med.Seconds(), l)
		ch <- prometheus.MustNewConstMetric(descProbed, prometheus.GaugeValue, float64(len(ds)), l)
	}
}

// snapshot counts the members by raw region and state, and lists the
// latest RTT to each other alive member by raw region.
func (m *Membership) snapshot(now time.Time) (counts map[string]map[string]int, rtts map[string][]time.Duration) {
	counts, rtts = map[string]map[string]int{}, map[string][]time.Duration{}
	add := func(region, state string) {
		if counts[region] == nil {
			counts[region] = map[string]int{}
		}
		counts[region][state]++
	}
	self := m.ml.LocalNode().Name
	for _, n := range m.Members() {
		add(n.Meta.Region, "alive")
		if n.Name != self && n.RTT > 0 {
			rtts[n.Meta.Region] = append(rtts[n.Meta.Region], n.RTT)
		}
	}
	for _, d := range m.Departed() {
		if now.Sub(d.At) > departedTTL {
			continue
		}
		state := "dead"
		if d.Left {
			state = "left"
		}
		add(d.Meta.Region, state)
	}
	return counts, rtts
}

// regionLabels maps every raw region in counts to its label value: its own
// name for the first MaxRegionLabels valid regions (own region first, then
// by members, then by name), InvalidRegion, NoRegion or OtherRegion.
func regionLabels(own string, counts map[string]map[string]int) map[string]string {
	labels := make(map[string]string, len(counts))
	valid := make([]string, 0, len(counts))
	total := map[string]int{}
	for region, byState := range counts {
		switch {
		case region == "":
			labels[region] = NoRegion
		case !validRegion(region):
			labels[region] = InvalidRegion
		default:
			valid = append(valid, region)
			for _, n := range byState {
				total[region] += n
			}
		}
	}
	sort.Slice(valid, func(i, j int) bool {
		a, b := valid[i], valid[j]
		if (a == own) != (b == own) {
			return a == own
		}
		return cmp.Or(cmp.Compare(total[b], total[a]), cmp.Compare(a, b)) < 0
	})
	for i, region := range valid {
		labels[region] = region
		if i >= MaxRegionLabels {
			labels[region] = OtherRegion
		}
	}
	return labels
}

// validRegion: at most maxRegionLen bytes of printable UTF-8, and none of
// the values that stand for something else.
func validRegion(r string) bool {
	if len(r) > maxRegionLen || !utf8.ValidString(r) || r == OtherRegion || r == NoRegion || r == InvalidRegion {
		return false
	}
	for _, c := range r {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}
