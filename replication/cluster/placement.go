package cluster

import (
	"cmp"
	"github.com/garret-cache/garret/replication/catalog"
	"slices"
)

// placementInput is what the leader decides voter placement from: the Raft
// configuration and what gossip says (or last said) about each node.
type placementInput struct {
	Leader    string          // this node's ID; it always keeps its vote
	MaxVoters int             // 3 or 5
	Config    map[string]bool // Raft servers: ID → voter
	Nodes     map[string]nodeState
}

// nodeState is one node as the leader sees it. Every Raft server has one;
// gossip members of another cluster are left out by the caller.
type nodeState struct {
	Name, Region string
	Eligible     bool // gossip metadata Voter
	Alive        bool // in gossip now
	Dead         bool // not alive for longer than DeadVoterTimeout
}

// placement is the configuration changes to make, in this order: remove dead
// voters, add or promote voters, demote extra voters, add non-voters.
type placement struct {
	Remove, Voters, Demote, Nonvoters []string
}

func (p placement) empty() bool {
	return len(p.Remove)+len(p.Voters)+len(p.Demote)+len(p.Nonvoters) == 0
}

// planPlacement chooses the voters: the leader, then one per region not yet
// covered, then current voters (no churn), then the least covered regions.
// Dead voters are removed and their slots given to live non-voters. A change
// is planned only if the live voters still form a quorum after it, so the
// leader keeps committing while the configuration changes.
func planPlacement(in placementInput) placement {
	var p placement
	voter := func(id string) bool { return in.Config[id] }

	// Who may hold a vote: the leader, voters that are not dead (a voter
	// gossip has lost only briefly keeps its slot), live eligible members.
	var pool []string
	for id, st := range in.Nodes {
		if id == in.Leader || (voter(id) && !st.Dead && st.Eligible) || (st.Alive && st.Eligible) {
			pool = append(pool, id)
		}
	}
	want := min(len(pool), in.MaxVoters)
	chosen := map[string]bool{}
	perRegion := map[string]int{}
	pick := func(id string) {
		chosen[id] = true
		perRegion[in.Nodes[id].Region]++
	}
	if _, ok := in.Nodes[in.Leader]; ok {
		pick(in.Leader)
	}
	// rank orders candidates: live voters, then voters gossip lost lately,
	// then non-voters (already caught up), then new members; by name last.
	rank := func(id string) int {
		switch st := in.Nodes[id]; {
		case voter(id) && st.Alive:
			return 0
		case voter(id):
			return 1
		case hasKey(in.Config, id):
			return 2
		}
		return 3
	}
	for len(chosen) < want {
		best := ""
		better := func(a, b string) bool { // is a a better choice than b?
			if b == "" {
				return true
			}
			na, nb := in.Nodes[a], in.Nodes[b]
			if ca, cb := perRegion[na.Region] == 0, perRegion[nb.Region] == 0; ca != cb {
				return ca
			}
			if ra, rb := rank(a), rank(b); ra != rb {
				return ra < rb
			}
			if c := cmp.Compare(perRegion[na.Region], perRegion[nb.Region]); c != 0 {
				return c < 0
			}
			return cmp.Or(cmp.Compare(na.Name, nb.Name), cmp.Compare(a, b)) < 0
		}
		for _, id := range pool {
			if !chosen[id] && better(id, best) {
				best = id
			}
		}
		pick(best)
	}

	// Apply the choice to a simulated configuration, change by change,
	// skipping any change after which the live voters would lose quorum.
	voters, live := 0, 0
	for id, v := range in.Config {
		if v {
			voters++
			if in.Nodes[id].Alive || id == in.Leader {
				live++
			}
		}
	}
	keepsQuorum := func(voters, live int) bool { return voters > 0 && live >= catalog.Quorum(voters) }
	if !keepsQuorum(voters, live) {
		return p // the leader cannot commit a change now anyway
	}
	for _, id := range sortedIDs(in) {
		if voter(id) && in.Nodes[id].Dead && id != in.Leader && keepsQuorum(voters-1, live) {
			p.Remove = append(p.Remove, id)
			voters--
		}
	}
	for _, id := range sortedIDs(in) {
		if chosen[id] && !voter(id) && in.Nodes[id].Alive {
			p.Voters = append(p.Voters, id)
			voters++
			live++
		}
	}
	for _, id := range sortedIDs(in) {
		if !voter(id) || chosen[id] || id == in.Leader || slices.Contains(p.Remove, id) {
			continue
		}
		l := live
		if in.Nodes[id].Alive {
			l--
		}
		if keepsQuorum(voters-1, l) {
			p.Demote = append(p.Demote, id)
			voters, live = voters-1, l
		}
	}
	for _, id := range sortedIDs(in) {
		if st := in.Nodes[id]; st.Alive && !hasKey(in.Config, id) && !chosen[id] {
			p.Nonvoters = append(p.Nonvoters, id)
		}
	}
	return p
}

func hasKey(m map[string]bool, k string) bool {
	_, ok := m[k]
	return ok
}

// sortedIDs lists the nodes by name, then ID, so plans are deterministic.
func sortedIDs(in placementInput) []string {
	ids := make([]string, 0, len(in.Nodes))
	for id := range in.Nodes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(in.Nodes[a].Name, in.Nodes[b].Name), cmp.Compare(a, b))
	})
	return ids
}
