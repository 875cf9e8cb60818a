// Package placement decides which nodes hold an object's chunks. By
// default every node holds every object. With [cluster] copies-per-region
// = N, each region keeps N copies, on the N of its live nodes that score
// highest for the object under rendezvous (highest-random-weight) hashing:
// a region's capacity grows with its nodes, and a node joining or leaving
// moves only the objects it gains or loses, about 1/n of a region's
// copies. It is a pure function of the object key and the node list, so
// every node computes the same answer without coordination.
package placement

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Node is a candidate holder.
type Node struct {
	ID     string // the node's peer ID
	Region string
}

// All means every node holds every object (copies-per-region unset).
const All = 0

// Holders returns the nodes that should hold the object with key: all of
// nodes when perRegion is All, else, in every region, the perRegion nodes
// with the highest score (all of a region's nodes if it has fewer). The
// result is ordered by region, then by score, highest first; nodes is not
// modified. Nodes are those placement may use (live members); a node
// listed twice counts once.
func Holders(key []byte, nodes []Node, perRegion int) []Node {
	if perRegion <= All {
		out := slices.Clone(nodes)
		slices.SortFunc(out, func(a, b Node) int { return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.ID, b.ID)) })
		return slices.CompactFunc(out, func(a, b Node) bool { return a.ID == b.ID })
	}
	base := keyed(key)
	type scored struct {
		node   *Node
		region int // index in regions
		score  uint64
	}
	// Regions are few: a linear search beats a map here.
	var regions []string
	all := make([]scored, len(nodes))
	for k := range nodes {
		n := &nodes[k]
		r := slices.Index(regions, n.Region)
		if r < 0 {
			regions = append(regions, n.Region)
			r = len(regions) - 1
		}
		all[k] = scored{n, r, score(base, n.ID)}
	}
	order := make([]int, len(regions))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(regions[a], regions[b]) })
	out := make([]Node, 0, perRegion*len(regions))
	for _, r := range order {
		start := len(out)
		// Selection of the perRegion best (perRegion is small): each round
		// takes the highest score not taken yet, ties to the lower ID.
		for range perRegion {
			best := -1
		cand:
			for i, c := range all {
				if c.region != r {
					continue
				}
				for _, taken := range out[start:] {
					if taken.ID == c.node.ID {
						continue cand // taken, or listed twice
					}
				}
				if best < 0 || c.score > all[best].score || (c.score == all[best].score && c.node.ID < all[best].node.ID) {
					best = i
				}
			}
			if best < 0 {
				break // fewer nodes in the region than copies
			}
			out = append(out, *all[best].node)
		}
	}
	return out
}

// Holds reports whether node id is among the holders of key.
func Holds(key []byte, nodes []Node, perRegion int, id string) bool {
	for _, n := range Holders(key, nodes, perRegion) {
		if n.ID == id {
			return true
		}
	}
	return false
}

// Score is the rendezvous weight of node id for key: xxHash64 of the key,
// a separator and the id.
func Score(key []byte, id string) uint64 { return score(keyed(key), id) }

// keyed is the hash state after the key and the separator, copied for each
// node so the key is hashed once per call.
func keyed(key []byte) xxhash.Digest {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write(key)
	_, _ = d.Write([]byte{0})
	return d
}

func score(base xxhash.Digest, id string) uint64 {
	_, _ = base.WriteString(id) // base is a copy
	return base.Sum64()
}
