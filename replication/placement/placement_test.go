package placement

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"
)

func cluster(regions, perRegion int) []Node {
	var out []Node
	for r := range regions {
		for i := range perRegion {
			out = append(out, Node{ID: fmt.Sprintf("node-%c%02d", 'a'+r, i), Region: fmt.Sprintf("region-%c", 'a'+r)})
		}
	}
	return out
}

func key(i int) []byte { return binary.BigEndian.AppendUint64([]byte("obj/"), uint64(i)) }

func TestHolders_DefaultIsEveryNode(t *testing.T) {
	nodes := cluster(3, 2)
	got := Holders(key(1), append(nodes, nodes[0]), All)
	if len(got) != 6 {
		t.Fatalf("%d holders, want every one of 6 nodes once", len(got))
	}
}

func TestHolders_PerRegion(t *testing.T) {
	nodes := append(cluster(2, 3), Node{ID: "lonely", Region: "region-z"})
	got := Holders(key(7), nodes, 2)
	per := map[string]int{}
	for _, n := range got {
		per[n.Region]++
	}
	if per["region-a"] != 2 || per["region-b"] != 2 || per["region-z"] != 1 {
		t.Fatalf("holders per region %v, want 2, 2 and the lonely node", per)
	}
	// Deterministic whatever the order of the node list.
	rev := make([]Node, len(nodes))
	for i, n := range nodes {
		rev[len(nodes)-1-i] = n
	}
	again := Holders(key(7), rev, 2)
	for i := range got {
		if got[i] != again[i] {
			t.Fatalf("order-dependent: %v vs %v", got, again)
		}
	}
}

// TestSimulation_BalanceAndMovement: 100 nodes in 4 regions, 100 000
// objects, 2 copies per region. Every node holds close to its share, and a
// node joining or leaving moves only about 1/n of its region's copies,
// nothing in other regions.
func TestSimulation_BalanceAndMovement(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const objects, copies = 100_000, 2
	nodes := cluster(4, 25)
	// Holder sets as sorted ID lists: cheap to compare for 100 000 objects.
	assign := func(nodes []Node) [][]string {
		out := make([][]string, objects)
		for i := range objects {
			hs := Holders(key(i), nodes, copies)
			ids := make([]string, len(hs))
			for j, n := range hs {
				ids[j] = n.ID
			}
			slices.Sort(ids)
			out[i] = ids
		}
		return out
	}
	before := assign(nodes)
	count := map[string]int{}
	for _, ids := range before {
		if len(ids) != 4*copies {
			t.Fatalf("an object with %d holders, want %d", len(ids), 4*copies)
		}
		for _, id := range ids {
			count[id]++
		}
	}
	want := float64(objects*copies) / 25
	worst := 0.0
	for _, n := range nodes {
		worst = max(worst, math.Abs(float64(count[n.ID])-want)/want)
	}
	t.Logf("balance: each node holds %.0f objects on average; the worst is %.1f%% off", want, 100*worst)
	if worst > 0.05 {
		t.Fatalf("a node is %.1f%% off its share", 100*worst)
	}

	// moved counts the copies b has that a had not (in) and the reverse.
	moved := func(a, b [][]string) (in, out int) {
		for i := range a {
			for _, id := range b[i] {
				if _, ok := slices.BinarySearch(a[i], id); !ok {
					in++
				}
			}
			for _, id := range a[i] {
				if _, ok := slices.BinarySearch(b[i], id); !ok {
					out++
				}
			}
		}
		return
	}
	joined := append(append([]Node{}, nodes...), Node{ID: "node-a99", Region: "region-a"})
	in, _ := moved(before, assign(joined))
	share := float64(objects*copies) / 26 // the new node's share of region-a's copies
	t.Logf("a join in region-a moves %d copies (%.2f%% of the region's; ideal %.0f)", in, 100*float64(in)/float64(objects*copies), share)
	if float64(in) > 1.15*share || float64(in) < 0.85*share {
		t.Fatalf("a join moved %d copies, want about %.0f", in, share)
	}
	left := append(append([]Node{}, nodes[:3]...), nodes[4:]...) // node-a03 leaves
	in, out := moved(before, assign(left))
	t.Logf("a leave in region-a moves %d copies (the leaver held %d)", in, count[nodes[3].ID])
	if in != count[nodes[3].ID] || out != count[nodes[3].ID] {
		t.Fatalf("a leave moved %d copies in, %d out; want exactly the %d the leaver held", in, out, count[nodes[3].ID])
	}
}

func BenchmarkHolders(b *testing.B) {
	nodes := cluster(4, 25)
	for i := 0; b.Loop(); i++ {
		Holders(key(i), nodes, 2)
	}
}
