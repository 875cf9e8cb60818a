package cluster

import (
	"reflect"
	"testing"
)

// TestPlanPlacement: which voters the leader (always eu-1) adds, promotes,
// demotes and removes. Node IDs are their names here.
func TestPlanPlacement(t *testing.T) {
	alive := func(region string) nodeState { return nodeState{Region: region, Eligible: true, Alive: true} }
	gone := func(region string) nodeState { return nodeState{Region: region, Eligible: true} }
	dead := func(region string) nodeState { return nodeState{Region: region, Eligible: true, Dead: true} }
	noVote := func(region string) nodeState { return nodeState{Region: region, Alive: true} }
	const V, NV = true, false
	for _, tc := range []struct {
		name   string
		max    int
		config map[string]bool
		nodes  map[string]nodeState
		want   placement
	}{
		{"new members: one voter per region first, then by name; the rest non-voters", 3,
			map[string]bool{"eu-1": V},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "us-1": alive("us"), "us-2": alive("us")},
			placement{Voters: []string{"eu-2", "us-1"}, Nonvoters: []string{"us-2"}}},
		{"a free slot goes to a non-voter of a region without a voter", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "eu-3": NV, "us-1": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": alive("us")},
			placement{Voters: []string{"us-1"}}},
		{"a caught-up non-voter is promoted before a new member of the same region", 3,
			map[string]bool{"eu-1": V, "us-1": V, "us-2": NV},
			map[string]nodeState{"eu-1": alive("eu"), "us-1": alive("us"), "us-0": alive("us"), "us-2": alive("us")},
			placement{Voters: []string{"us-2"}, Nonvoters: []string{"us-0"}}},
		{"live voters stay: no churn when regions are already covered", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "us-1": V, "us-2": NV, "eu-3": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": alive("us"), "us-2": alive("us")},
			placement{}},
		{"a dead voter is removed and its slot given to a non-voter of its region", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "eu-3": NV, "us-1": V, "us-2": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": dead("us"), "us-2": alive("us")},
			placement{Remove: []string{"us-1"}, Voters: []string{"us-2"}}},
		{"a voter gossip lost only lately keeps its slot", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "us-1": V, "us-2": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "us-1": gone("us"), "us-2": alive("us")},
			placement{}},
		{"two dead voters of three: the leader cannot commit, nothing is changed", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "us-1": V, "us-2": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": dead("eu"), "us-1": dead("us"), "us-2": alive("us")},
			placement{}},
		{"one dead voter of two: no quorum, nothing is changed", 3,
			map[string]bool{"eu-1": V, "eu-2": V},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": dead("eu")},
			placement{}},
		{"two dead voters of five: both removed (quorum holds at each step), the live non-voter promoted", 5,
			map[string]bool{"eu-1": V, "eu-2": V, "eu-3": V, "us-1": V, "us-2": V, "us-3": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": dead("us"), "us-2": dead("us"), "us-3": alive("us")},
			placement{Remove: []string{"us-1", "us-2"}, Voters: []string{"us-3"}}},
		{"voters = 5 shrunk to 3: extras demoted, both regions kept, never the leader", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "eu-3": V, "us-1": V, "us-2": V},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": alive("us"), "us-2": alive("us")},
			placement{Demote: []string{"eu-3", "us-2"}}},
		{"a region without a voter gets one from a region holding two", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "eu-3": V, "us-1": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": alive("us")},
			placement{Voters: []string{"us-1"}, Demote: []string{"eu-3"}}},
		{"three regions, five voters: every region, then the least covered", 5,
			map[string]bool{"eu-1": V},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "eu-3": alive("eu"), "us-1": alive("us"), "us-2": alive("us"), "ap-1": alive("ap")},
			placement{Voters: []string{"ap-1", "eu-2", "us-1", "us-2"}, Nonvoters: []string{"eu-3"}}},
		{"members with voter = false join as non-voters; a voter that became one is demoted", 3,
			map[string]bool{"eu-1": V, "eu-2": V},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": noVote("eu"), "us-1": noVote("us")},
			placement{Demote: []string{"eu-2"}, Nonvoters: []string{"us-1"}}},
		{"a dead non-voter is left alone", 3,
			map[string]bool{"eu-1": V, "eu-2": V, "us-1": V, "us-2": NV},
			map[string]nodeState{"eu-1": alive("eu"), "eu-2": alive("eu"), "us-1": alive("us"), "us-2": dead("us")},
			placement{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for id, st := range tc.nodes {
				st.Name = id
				tc.nodes[id] = st
			}
			got := planPlacement(placementInput{Leader: "eu-1", MaxVoters: tc.max, Config: tc.config, Nodes: tc.nodes})
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
