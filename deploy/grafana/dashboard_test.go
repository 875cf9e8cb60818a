package grafana

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/node"
)

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func parseDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(Dashboard)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("garret.json: %v", err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// TestDashboard_Importable: the JSON has what Grafana's import needs — a
// title and uid, the Prometheus data source as the DS_PROMETHEUS variable
// every panel uses, a node (instance) variable, unique panel ids with a
// place on the grid, and a query in every panel that is not a row.
func TestDashboard_Importable(t *testing.T) {
	d := parseDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Fatalf("title %q, uid %q", d.Title, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["DS_PROMETHEUS"] != "datasource" || vars["instance"] != "query" {
		t.Fatalf("template variables %v: want DS_PROMETHEUS (datasource) and instance (query)", vars)
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no place on the grid", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want the DS_PROMETHEUS variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: empty query or refId", p.Title)
			}
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q ignores the node variable: %s", p.Title, tg.Expr)
			}
		}
	}
	if queries < 30 {
		t.Fatalf("only %d queries", queries)
	}
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promVariable = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true,
		"without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames extracts the metric names a PromQL expression selects: with
// strings, variables, label matchers, ranges and grouping clauses removed,
// every identifier that is neither a function (followed by "(") nor a
// keyword is a metric.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promVariable.ReplaceAllString(e, "")
	e = promMatchers.ReplaceAllString(e, "")
	e = promRange.ReplaceAllString(e, "")
	e = promGrouping.ReplaceAllString(e, "")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // a number's exponent or suffix
		}
		if promKeywords[strings.ToLower(id)] || strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " \t\n"), "(") {
			continue
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (route, code) (rate(garret_http_requests_total{job=~"$job",instance=~"$instance"}[$__rate_interval]))`: {"garret_http_requests_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{route="/{cache}/nar/{file}"}[5m])))`:                      {"x_bucket"},
		`a{l="x"} - on (instance) b == 1`:                                           {"a", "b"},
		`time() - (c_seconds > 0) and d unless e offset 1h`:                         {"c_seconds", "d", "e"},
		`1e3 * sum without (region) (f)`:                                            {"f"},
		`label_replace(g, "dst", "$1", "src", "(.*)") + count(h) by (x)`:            {"g", "h"},
		`1 * sum by (instance) (s{state="follower"}) + 2 * sum by (instance) (s{})`: {"s"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

// TestDashboard_MetricsExist: every metric a panel queries is one a real
// node exports. The node is a one-node cluster (gossip and the syncer run,
// as on every cluster node); its names are those its collectors declare,
// so vectors without a value yet count. A histogram's _bucket, _sum and
// _count are its base name's.
func TestDashboard_MetricsExist(t *testing.T) {
	n := startNode(t)
	names, err := n.MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, name := range names {
		exported[name] = true
	}
	has := func(m string) bool {
		if exported[m] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && exported[base] {
				return true
			}
		}
		return false
	}
	used := map[string]bool{}
	for _, p := range allPanels(parseDashboard(t).Panels) {
		for _, tg := range p.Targets {
			ms := metricNames(tg.Expr)
			if len(ms) == 0 {
				t.Errorf("panel %q: no metric in %s", p.Title, tg.Expr)
			}
			for _, m := range ms {
				used[m] = true
				if !has(m) {
					t.Errorf("panel %q queries %s, which a node does not export", p.Title, m)
				}
			}
		}
	}
	// Issue 12's families, each on a panel.
	for _, m := range []string{"garret_http_requests_total", "garret_http_request_duration_seconds_bucket",
		"garret_http_request_body_bytes_total", "garret_http_response_body_bytes_total", "garret_pushes_total",
		"garret_ingest_dedup_bytes_total", "garret_catalog_raft_state", "garret_catalog_leader", "garret_catalog_term",
		"garret_catalog_commit_index", "garret_catalog_applied_index", "garret_gossip_members", "garret_gossip_rtt_seconds",
		"garret_syncer_backlog_bytes", "garret_syncer_lag_seconds", "garret_syncer_frame_bytes_total",
		"garret_chunkstore_segment_bytes", "garret_chunkstore_segment_garbage_bytes", "garret_gc_runs_total",
		"garret_gc_objects_expired_total", "garret_gc_chunks_deleted_total", "garret_gc_bytes_freed_total",
		"garret_gc_disk_bytes_freed_total", "garret_gc_last_run_timestamp_seconds",
		"garret_chunkstore_scrub_last_completed_timestamp_seconds"} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// startNode starts a one-node cluster in-process: gossip and p2p on
// loopback, port 0, fast Raft timings.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	dir := t.TempDir()
	text := `listen = "127.0.0.1:0"
data-dir = "` + filepath.Join(dir, "data") + `"
[jwt.signing]
token-hs256-secret-base64 = "` + base64.StdEncoding.EncodeToString([]byte("dashboard-test-secret-dashboard-test")) + `"
[cluster]
node-name = "eu-1"
region = "eu"
secret = "dashboard-test-cluster-secret-0123456789"
gossip-listen = "127.0.0.1:0"
`
	p := filepath.Join(dir, "server.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := serverconfig.Load(p, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Server: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FastTimings: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n
}
