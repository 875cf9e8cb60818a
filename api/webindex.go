package api

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/garret-cache/garret/replication/catalog"
)

// indexData is the front page: this node, and the caches the visitor may
// see with the commands to use each.
type indexData struct {
	Node, Region      string
	Clustered         bool
	LiveNodes         int
	Leader            string // "" when no leader is known
	Endpoint          string // the API endpoint, no trailing slash
	ServerName        string // a suggested name for `garret login`
	Caches            []indexCache
	More              int // caches not listed past maxWebCaches
	LoggedIn, IsAdmin bool
	Subject           string
}

type indexCache struct {
	Name, PublicKey, Substituter, Upload string
	Public                               bool
	Priority                             int32
}

// indexPage is GET /: what this node is, and for each cache the visitor may
// see (public ones; with a token in the cookie or Authorization, those it
// grants anything on) the commands that start using it.
func (s *Server) indexPage(w http.ResponseWriter, r *http.Request) {
	ws, err := s.webSessionOf(w, r)
	if err != nil {
		s.webError(w, r, err, false)
		return
	}
	d := indexData{Node: s.cfg.NodeName, Region: s.cfg.Region, Endpoint: strings.TrimSuffix(s.apiEndpoint(r), "/"), LoggedIn: ws.claims != nil}
	d.ServerName = serverName(d.Endpoint)
	if ws.claims != nil {
		d.IsAdmin, d.Subject = ws.seesCluster(), ws.claims.Subject
	}
	if s.cluster != nil {
		live := s.cluster.LiveNodes()
		d.Clustered, d.LiveNodes = len(live) > 1, len(live)
		for _, n := range live {
			if n.Leader {
				d.Leader = n.Name
			}
		}
	}
	caches, err := s.catalog.Caches()
	if err != nil {
		s.webError(w, r, err, ws.claims != nil)
		return
	}
	visible := make([]catalog.Cache, 0, len(caches))
	for _, c := range caches {
		if c.IsPublic || (ws.claims != nil && ws.claims.PermissionFor(c.Name).Any()) {
			visible = append(visible, c)
		}
	}
	sort.Slice(visible, func(i, j int) bool { return visible[i].Name < visible[j].Name })
	if len(visible) > maxWebCaches {
		d.More, visible = len(visible)-maxWebCaches, visible[:maxWebCaches]
	}
	for _, c := range visible {
		key, err := s.keys.get(c.Keypair)
		if err != nil {
			s.webError(w, r, err, ws.claims != nil)
			return
		}
		d.Caches = append(d.Caches, indexCache{Name: string(c.Name), PublicKey: key.PublicKey(), Public: c.IsPublic, Priority: c.Priority,
			Substituter: s.substituterEndpoint(r, c.Name), Upload: s.uploadEndpoint(r, c.Name)})
	}
	title := "Garret"
	if d.Node != "" {
		title = "Garret · " + d.Node
	}
	s.render(w, r, http.StatusOK, "index", webPage{Title: title, LoggedIn: ws.claims != nil, Data: d})
}

var serverNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// serverName suggests the local name `garret login` gives the server: the
// endpoint's first host label when it is a plain word (cache.example.net:
// "cache"), else "garret".
func serverName(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "garret"
	}
	label, _, _ := strings.Cut(strings.ToLower(u.Hostname()), ".")
	if !serverNameRE.MatchString(label) || label == "localhost" {
		return "garret"
	}
	return label
}
