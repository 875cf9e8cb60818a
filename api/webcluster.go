package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/gc"
)

// maxWebNodes bounds the nodes the cluster page lists and draws.
const maxWebNodes = 200

// clusterData is the cluster page.
type clusterData struct {
	Status     v1.ClusterStatus // Nodes cut to maxWebNodes
	MoreNodes  int
	LeaderName string
	Answering  string // the node that answers (whose RTTs are drawn)
	Map        clusterMap
	Caches     []CacheStat
	MoreCaches int
	GCRuns     []gc.Run
	GCKnown    bool // the node keeps a GC history
}

// clusterPage is GET /_garret/cluster, for a cluster-admin token (or a web
// link's): anyone else is sent to the log-in form, and a logged-in token
// without the permission gets a 403 page naming it.
func (s *Server) clusterPage(w http.ResponseWriter, r *http.Request) {
	ws, err := s.webSessionOf(w, r)
	if err != nil {
		s.webError(w, r, err, false)
		return
	}
	switch {
	case ws.claims == nil:
		q := url.Values{"next": {WebPrefix + "/cluster"}}
		http.Redirect(w, r, WebPrefix+"/login?"+q.Encode(), http.StatusSeeOther)
		return
	case !ws.seesCluster():
		s.webError(w, r, withMessage(errAccess, "The cluster page needs the cluster-admin permission, which this token (subject %q) does not have. Mint one with garretd make-token --cluster-admin, or run garret cluster status --web.", ws.claims.Subject), true)
		return
	case s.cluster == nil:
		s.webError(w, r, withMessage(errNotFound, "This node has no cluster view."), true)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st := s.cluster.ClusterStatus(ctx)
	d := clusterData{Status: st}
	if len(d.Status.Nodes) > maxWebNodes {
		d.MoreNodes, d.Status.Nodes = len(d.Status.Nodes)-maxWebNodes, d.Status.Nodes[:maxWebNodes]
	}
	for _, n := range st.Nodes {
		if n.Leader {
			d.LeaderName = n.Name
		}
		if n.PeerID == st.Node {
			d.Answering = n.Name
		}
	}
	d.Map = layoutCluster(d.Status)
	if d.Caches, d.MoreCaches, err = s.cacheStats.get(s.catalog); err != nil {
		s.webError(w, r, err, true)
		return
	}
	if s.gcRuns != nil {
		d.GCRuns, d.GCKnown = s.gcRuns(), true
	}
	s.render(w, r, http.StatusOK, "cluster", webPage{Title: "Cluster · Garret", LoggedIn: true, Refresh: webRefresh, Data: d})
}

// clusterMap is the inline SVG: regions as boxes on a circle, their nodes
// inside, and a line between every two regions labelled with the RTT the
// answering node measured (gossip probes) to the other region's nodes.
type clusterMap struct {
	Width, Height int
	Regions       []mapRegion
	Links         []mapLink
}

type mapRegion struct {
	Name                string
	X, Y, W, H          float64
	LabelX, LabelY      float64
	Nodes               []mapNode
	CenterX, CenterY    float64
	Self                bool // the answering node's region
	nodeCount, rttCount int
	rttSum              float64
}

type mapNode struct {
	Name, Health, Class string
	X, Y                float64
	Leader, Self        bool
}

type mapLink struct {
	X1, Y1, X2, Y2 float64
	LX, LY         float64
	Label          string
	Measured       bool
}

// Map geometry.
const (
	mapNodeGap = 56.0 // between node centres
	mapBoxH    = 92.0
	mapPad     = 30.0
)

// layoutCluster places regions evenly on a circle (one region: the centre)
// and each region's nodes in a row inside its box.
func layoutCluster(st v1.ClusterStatus) clusterMap {
	byName := map[string]*mapRegion{}
	var order []string
	for _, n := range st.Nodes {
		name := n.Region
		if name == "" {
			name = "(no region)"
		}
		reg := byName[name]
		if reg == nil {
			reg = &mapRegion{Name: name}
			byName[name] = reg
			order = append(order, name)
		}
		class := "node-" + orWord(n.Health, "dead")
		if n.Unreachable && n.Health == "alive" {
			class = "node-suspect"
		}
		reg.Nodes = append(reg.Nodes, mapNode{Name: n.Name, Health: orWord(n.Health, "unknown"), Class: class, Leader: n.Leader, Self: n.PeerID == st.Node})
		if n.PeerID == st.Node {
			reg.Self = true
		}
		if n.RTTMs > 0 {
			reg.rttSum += n.RTTMs
			reg.rttCount++
		}
	}
	sort.Strings(order)
	maxW := 0.0
	for _, name := range order {
		reg := byName[name]
		reg.W = math.Max(160, float64(len(reg.Nodes))*mapNodeGap+24)
		reg.H = mapBoxH
		maxW = math.Max(maxW, reg.W)
	}
	k := len(order)
	radius := 0.0
	if k > 1 {
		// Far enough apart that neighbouring boxes do not overlap.
		radius = math.Max(150, (maxW+40)/(2*math.Sin(math.Pi/float64(k))))
		if k == 2 {
			radius = math.Max(150, maxW/2+60)
		}
	}
	cx, cy := radius+maxW/2+mapPad, radius+mapBoxH/2+mapPad+14
	m := clusterMap{Width: int(2*cx + 0.5), Height: int(2*cy + 0.5)}
	if k == 2 {
		m.Height = int(mapBoxH + 2*mapPad + 30)
		cy = float64(m.Height) / 2
	}
	for i, name := range order {
		reg := byName[name]
		angle := -math.Pi/2 + 2*math.Pi*float64(i)/float64(k)
		if k == 2 {
			angle = math.Pi * float64(i+1) // left, then right
		}
		reg.CenterX, reg.CenterY = cx+radius*math.Cos(angle), cy+radius*math.Sin(angle)
		reg.X, reg.Y = reg.CenterX-reg.W/2, reg.CenterY-reg.H/2
		reg.LabelX, reg.LabelY = reg.X+10, reg.Y+18
		start := reg.CenterX - float64(len(reg.Nodes)-1)*mapNodeGap/2
		for j := range reg.Nodes {
			reg.Nodes[j].X, reg.Nodes[j].Y = start+float64(j)*mapNodeGap, reg.CenterY+6
		}
		m.Regions = append(m.Regions, *reg)
	}
	// Lines between region pairs. RTTs are what the answering node measured,
	// so only pairs with its region are labelled; the others are drawn
	// dashed and unlabelled.
	for i := range m.Regions {
		for j := i + 1; j < len(m.Regions); j++ {
			a, b := &m.Regions[i], &m.Regions[j]
			l := mapLink{X1: a.CenterX, Y1: a.CenterY, X2: b.CenterX, Y2: b.CenterY, LX: (a.CenterX + b.CenterX) / 2, LY: (a.CenterY+b.CenterY)/2 - 6}
			other := b
			if b.Self {
				other = a
			}
			if (a.Self || b.Self) && other.rttCount > 0 {
				l.Measured, l.Label = true, fmt.Sprintf("%.0f ms", other.rttSum/float64(other.rttCount))
			}
			m.Links = append(m.Links, l)
		}
	}
	return m
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
