package api

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/replication/gc"
)

// page is one web response, redirects not followed.
type page struct {
	status int
	body   string
	header http.Header
}

// web sends a browser-like request: cookie (a token, "" for none) and
// extra headers; it follows no redirect.
func (e *testEnv) web(method, path, cookie string, form url.Values, hdr map[string]string) page {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: webCookie, Value: cookie})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, string(b), resp.Header}
}

// sessionCookie is the garret_token cookie a response sets.
func sessionCookie(t *testing.T, p page) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == webCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie set (status %d, headers %v)", webCookie, p.status, p.header)
	return nil
}

func (e *testEnv) origin() map[string]string { return map[string]string{"Origin": e.srv.URL} }

func TestWeb_IndexShowsVisibleCachesWithCommands(t *testing.T) {
	e := newTestEnvWith(t, Config{NodeName: "eu-1", Region: "eu-central"})
	e.createCache("pub", true)
	e.createCache("secret", false)
	p := e.web("GET", "/", "", nil, nil)
	if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", p.status, p.header)
	}
	st, b := e.do("GET", "/_api/v1/cache-config/pub", e.root, nil, nil)
	var cc v1.CacheConfig
	if st != 200 || json.Unmarshal(b, &cc) != nil {
		t.Fatalf("cache config: %d %s", st, b)
	}
	endpoint := strings.TrimSuffix(*cc.APIEndpoint, "/")
	text := html.UnescapeString(p.body) // a key's '+' is &#43; in the HTML
	for _, want := range []string{
		"eu-1", "eu-central", "a single node",
		"garret login garret " + endpoint + " <var>TOKEN</var>",
		"garret use pub",
		"substituters = " + *cc.SubstituterEndpoint,
		"trusted-public-keys = " + *cc.PublicKey,
		"nix copy --to '" + *cc.UploadEndpoint + "?compression=zstd' <var>PATH</var>",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the front page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "secret") {
		t.Fatal("an anonymous visitor sees the private cache")
	}
	// A token that may pull it shows it, from the cookie or Authorization.
	tok := e.mint(token.MintOptions{Subject: "dev", Validity: time.Hour, Pull: []string{"secret"}})
	for name, p := range map[string]page{
		"cookie":        e.web("GET", "/", tok, nil, nil),
		"authorization": e.web("GET", "/", "", nil, map[string]string{"Authorization": "Bearer " + tok}),
	} {
		if p.status != 200 || !strings.Contains(p.body, `id="cache-secret"`) || !strings.Contains(p.body, "private") || !strings.Contains(p.body, "garret use secret") {
			t.Fatalf("%s: the private cache is not shown to a token that may pull it: %d", name, p.status)
		}
	}
	// A token for another cache still does not see it.
	other := e.mint(token.MintOptions{Subject: "dev", Validity: time.Hour, Pull: []string{"pub"}})
	if p := e.web("GET", "/", other, nil, nil); strings.Contains(p.body, "secret") {
		t.Fatal("a token without permission on the private cache sees it")
	}
}

func TestWeb_EscapesEverything(t *testing.T) {
	evil := `<script>alert("x")</script>`
	e := newTestEnvWith(t, Config{NodeName: evil, Region: `"><img src=x>`, APIEndpoint: `http://cache.example.net/"><b>x</b>/`})
	e.createCache("c", true)
	for _, path := range []string{"/", WebPrefix + "/login?next=" + url.QueryEscape(`/"><i>`)} {
		p := e.web("GET", path, "", nil, nil)
		if p.status != 200 {
			t.Fatalf("%s: %d", path, p.status)
		}
		for _, raw := range []string{"<script>", `"><img`, "<b>x</b>", `"><i>`} {
			if strings.Contains(p.body, raw) {
				t.Fatalf("%s: %q reached the page unescaped", path, raw)
			}
		}
		if !strings.Contains(p.body, "&lt;script&gt;") {
			t.Fatalf("%s: the node name is not shown escaped", path)
		}
	}
}

func TestWeb_BoundsTheCacheList(t *testing.T) {
	e := newTestEnv(t)
	for i := range maxWebCaches + 3 {
		e.createCache(fmt.Sprintf("c%03d", i), true)
	}
	p := e.web("GET", "/", "", nil, nil)
	if n := strings.Count(p.body, `<article class="cache"`); n != maxWebCaches || !strings.Contains(p.body, "… and 3 more.") {
		t.Fatalf("%d caches listed, want %d and 3 more", n, maxWebCaches)
	}
}

func TestWeb_LoginSetsAStrictCookie(t *testing.T) {
	e := newTestEnv(t)
	admin := e.mint(token.MintOptions{Subject: "ops", Validity: time.Hour, ClusterAdmin: true})
	form := url.Values{"token": {admin}, "next": {WebPrefix + "/cluster"}}
	p := e.web("POST", WebPrefix+"/login", "", form, e.origin())
	if p.status != http.StatusSeeOther || p.header.Get("Location") != WebPrefix+"/cluster" {
		t.Fatalf("log-in: %d to %q", p.status, p.header.Get("Location"))
	}
	if p := e.web("GET", WebPrefix+"/login", "", nil, nil); p.header.Get("Referrer-Policy") != "same-origin" || !strings.Contains(p.header.Get("Content-Security-Policy"), "form-action 'self'") {
		t.Fatalf("page headers %v", p.header)
	}
	c := sessionCookie(t, p)
	if c.Value != admin || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.Expires.IsZero() {
		t.Fatalf("cookie %+v", c)
	}
	// Behind a TLS proxy the cookie is Secure.
	p = e.web("POST", WebPrefix+"/login", "", form, map[string]string{"Origin": e.srv.URL, "X-Forwarded-Proto": "https"})
	if c := sessionCookie(t, p); !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie over https: %+v", c)
	}
	// next must stay on this site.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", `/\evil.example`} {
		p := e.web("POST", WebPrefix+"/login", "", url.Values{"token": {admin}, "next": {next}}, e.origin())
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/" {
			t.Fatalf("next %q: redirected to %q", next, p.header.Get("Location"))
		}
	}
	// Log-out clears it.
	p = e.web("GET", WebPrefix+"/logout", admin, nil, nil)
	if c := sessionCookie(t, p); p.status != http.StatusSeeOther || c.Value != "" || c.MaxAge >= 0 {
		t.Fatalf("log-out: %d, cookie %+v", p.status, c)
	}
}

func TestWeb_LoginRefusesCrossSiteAndBadInput(t *testing.T) {
	e := newTestEnv(t)
	admin := e.mint(token.MintOptions{Subject: "ops", Validity: time.Hour, ClusterAdmin: true})
	form := url.Values{"token": {admin}}
	for name, hdr := range map[string]map[string]string{
		"other origin":          {"Origin": "https://evil.example"},
		"other referer":         {"Referer": "https://evil.example/page"},
		"neither":               {},
		"fetch metadata":        {"Origin": e.srv.URL, "Sec-Fetch-Site": "cross-site"},
		"same site, not origin": {"Sec-Fetch-Site": "same-site"},
		"null origin, no ref.":  {"Origin": "null"},
		"origin names a subdir": {"Origin": "http://evil.example/" + strings.TrimPrefix(e.srv.URL, "http://")},
	} {
		p := e.web("POST", WebPrefix+"/login", "", form, hdr)
		if p.status != http.StatusForbidden || p.header.Get("Set-Cookie") != "" || !strings.Contains(p.body, "Log-in refused") {
			t.Errorf("%s: %d, Set-Cookie %q", name, p.status, p.header.Get("Set-Cookie"))
		}
	}
	for name, hdr := range map[string]map[string]string{
		"Referer without Origin":         {"Referer": e.srv.URL + "/_garret/login"},
		"null Origin, same-origin fetch": {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
	} {
		if p := e.web("POST", WebPrefix+"/login", "", form, hdr); p.status != http.StatusSeeOther {
			t.Fatalf("%s: %d", name, p.status)
		}
	}
	cases := []struct {
		form   url.Values
		status int
		text   string
	}{
		{url.Values{"token": {""}}, 400, "Paste a token"},
		{url.Values{"token": {strings.Repeat("a", maxWebToken+1)}}, 400, "longer than a browser can keep"},
		{url.Values{"token": {"not.a.jwt"}}, 401, "This token was refused: token is malformed"},
		{url.Values{"token": {e.mint(token.MintOptions{Subject: "x", Validity: time.Second, Now: time.Now().Add(-time.Hour)})}}, 401, "token is expired"},
		{url.Values{"token": {strings.Repeat("b", maxLoginForm)}}, 413, "larger than 16 KiB"},
	}
	for _, c := range cases {
		p := e.web("POST", WebPrefix+"/login", "", c.form, e.origin())
		if p.status != c.status || !strings.Contains(p.body, c.text) || p.header.Get("Set-Cookie") != "" {
			t.Errorf("token of %d bytes: %d (want %d with %q)", len(c.form.Get("token")), p.status, c.status, c.text)
		}
	}
}

func TestWeb_ClusterPageNeedsClusterAdmin(t *testing.T) {
	fc := &fakeCluster{status: &v1.ClusterStatus{Node: "p1", Leader: "p2", Term: 7, Nodes: []v1.ClusterNode{
		{Name: "eu-1", PeerID: "p1", Region: "eu", Role: "voter", Health: "alive", State: "follower", AppliedIndex: 10,
			Replication: &v1.ReplicationStatus{Backlog: 3, BacklogBytes: 3 << 20, LagSeconds: 4.5}},
		{Name: "us-1", PeerID: "p2", Region: "us", Role: "voter", Leader: true, Health: "alive", State: "leader", RTTMs: 150},
		{Name: "ap-1", PeerID: "p3", Region: "ap", Role: "voter", Health: "suspect", Unreachable: true},
	}}}
	var runs []gc.Run
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: fc, GCRuns: func() []gc.Run { return runs }})
	e.createCache("pub", true)
	for _, seed := range []string{"a", "b"} {
		nar := fileNAR("contents of " + seed)
		if st, b := e.upload(e.root, uploadInfo("pub", seed, nar), nar); st != 200 {
			t.Fatalf("upload: %d %s", st, b)
		}
	}

	// Anonymous: to the log-in form, and back here after it.
	p := e.web("GET", WebPrefix+"/cluster", "", nil, nil)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != WebPrefix+"/login?next=%2F_garret%2Fcluster" {
		t.Fatalf("anonymous: %d to %q", p.status, p.header.Get("Location"))
	}
	// A token without cluster-admin: 403, naming the permission.
	dev := e.mint(token.MintOptions{Subject: "dev", Validity: time.Hour, Pull: []string{"*"}})
	p = e.web("GET", WebPrefix+"/cluster", dev, nil, nil)
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "garretd make-token --cluster-admin") || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("without cluster-admin: %d %s", p.status, p.body)
	}
	admin := e.mint(token.MintOptions{Subject: "ops", Validity: time.Hour, ClusterAdmin: true})
	p = e.web("GET", WebPrefix+"/cluster", admin, nil, nil)
	if p.status != 200 {
		t.Fatalf("cluster page: %d %s", p.status, p.body)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`, `<svg id="cluster-map"`,
		`data-node="us-1" data-health="alive"`, `data-node="ap-1" data-health="suspect"`, `id="leader">us-1<`,
		">150 ms<", ">3.0 MiB<", ">4.5s<", "unreachable",
		`data-cache="pub"`, `class="num objects">2<`, "No garbage collection run yet",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the cluster page lacks %q", want)
		}
	}
	// GC runs are shown once there are some.
	runs = []gc.Run{{Started: time.Now().Add(-time.Minute), Duration: 1500 * time.Millisecond, ObjectsExpired: 4,
		SweepStats: chunkstore.SweepStats{ChunksDeleted: 9, BytesFreed: 2 << 20}}}
	p = e.web("GET", WebPrefix+"/cluster", admin, nil, nil)
	if !strings.Contains(p.body, `id="gc-runs"`) || !strings.Contains(p.body, ">1.5s<") || !strings.Contains(p.body, ">2.0 MiB<") || strings.Contains(p.body, "No garbage collection run yet") {
		t.Fatalf("GC runs not shown")
	}
	// API errors stay Attic's JSON.
	st, b := e.do("GET", "/_api/v1/cluster", dev, nil, nil)
	errorBody(t, "API status without cluster-admin", st, b, 403, "AccessError", "cluster-admin")
}

func TestWeb_RevokedCookieEndsTheSession(t *testing.T) {
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: &fakeCluster{}})
	admin := e.mint(token.MintOptions{Subject: "ops", Validity: time.Hour, ClusterAdmin: true})
	if p := e.web("GET", WebPrefix+"/cluster", admin, nil, nil); p.status != 200 {
		t.Fatalf("before the revocation: %d", p.status)
	}
	if st, b := e.revoke(admin, `{"token":"`+admin+`"}`); st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	p := e.web("GET", WebPrefix+"/cluster", admin, nil, nil)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), WebPrefix+"/login") {
		t.Fatalf("a revoked cookie still opens the page: %d", p.status)
	}
	if c := sessionCookie(t, p); c.MaxAge >= 0 {
		t.Fatalf("the revoked cookie is not cleared: %+v", c)
	}
	// The form says why, and refuses the revoked token.
	if p := e.web("GET", WebPrefix+"/login", admin, nil, nil); !strings.Contains(p.body, "Your session ended: token has been revoked") {
		t.Fatalf("the log-in page does not say why: %s", p.body)
	}
	if p := e.web("POST", WebPrefix+"/login", "", url.Values{"token": {admin}}, e.origin()); p.status != 401 || !strings.Contains(p.body, "revoked") {
		t.Fatalf("log-in with a revoked token: %d", p.status)
	}
}

// webLink asks for a web link and returns its URL's path and query.
func webLink(t *testing.T, e *testEnv, tok string) string {
	t.Helper()
	st, b := e.do("POST", "/_api/v1/cluster/web-link", tok, nil, nil)
	var res v1.WebLinkResponse
	if st != 200 || json.Unmarshal(b, &res) != nil {
		t.Fatalf("web-link: %d %s", st, b)
	}
	if until := time.Until(res.ExpiresAt); until > WebLinkValidity || until < WebLinkValidity-time.Minute {
		t.Fatalf("the link expires in %v", until)
	}
	u, err := url.Parse(res.URL)
	if err != nil || !strings.HasPrefix(res.URL, e.srv.URL+WebPrefix+"/link?token=") {
		t.Fatalf("link %q", res.URL)
	}
	return u.RequestURI()
}

func TestWeb_SignedLinkOpensOnlyTheClusterPage(t *testing.T) {
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: &fakeCluster{}})
	e.createCache("secret", false)
	auth := e.auth
	e.api.signer = auth
	admin := e.mint(token.MintOptions{Subject: "ops", Validity: time.Hour, ClusterAdmin: true})
	dev := e.mint(token.MintOptions{Subject: "dev", Validity: time.Hour, Pull: []string{"*"}})
	st, b := e.do("POST", "/_api/v1/cluster/web-link", dev, nil, nil)
	errorBody(t, "web-link without cluster-admin", st, b, 403, "AccessError", "cluster-admin")

	link := webLink(t, e, admin)
	raw, _ := url.ParseQuery(strings.SplitN(link, "?", 2)[1])
	linkToken := raw.Get("token")
	p := e.web("GET", link, "", nil, nil)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != WebPrefix+"/cluster" {
		t.Fatalf("opening the link: %d to %q", p.status, p.header.Get("Location"))
	}
	c := sessionCookie(t, p)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || time.Until(c.Expires) < webSessionValidity-time.Minute {
		t.Fatalf("link cookie %+v", c)
	}
	if p := e.web("GET", WebPrefix+"/cluster", c.Value, nil, nil); p.status != 200 {
		t.Fatalf("the link's session does not open the cluster page: %d", p.status)
	}
	// Neither the link's token nor the session's does anything on the API.
	for _, tok := range []string{linkToken, c.Value} {
		st, b := e.do("GET", "/_api/v1/cluster", tok, nil, nil)
		errorBody(t, "cluster status with a web token", st, b, 401, "Unauthorized", "only opens the cluster web page")
		if st, _ := e.do("GET", "/_api/v1/cache-config/secret", tok, nil, nil); st != 401 {
			t.Fatalf("a web token reads a private cache's config: %d", st)
		}
		if p := e.web("GET", "/", tok, nil, nil); strings.Contains(p.body, "secret") {
			t.Fatal("a web token shows a private cache on the front page")
		}
	}
	// Revoking the link's jti ends its session too.
	if st, b := e.revoke(admin, `{"token":"`+linkToken+`"}`); st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	if p := e.web("GET", WebPrefix+"/cluster", c.Value, nil, nil); p.status != http.StatusSeeOther {
		t.Fatalf("the session of a revoked link still works: %d", p.status)
	}
	// An expired link, and an ordinary token in a link, are refused.
	old, _, err := e.api.signPageToken("ops", newJTI(), time.Now().Add(-WebLinkValidity-time.Minute), WebLinkValidity)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"expired": old, "admin token": admin, "garbage": "x.y.z"} {
		p := e.web("GET", WebPrefix+"/link?token="+url.QueryEscape(tok), "", nil, nil)
		if p.status/100 != 4 || p.header.Get("Set-Cookie") != "" {
			t.Fatalf("%s link: %d, Set-Cookie %q", name, p.status, p.header.Get("Set-Cookie"))
		}
	}
	if p := e.web("GET", WebPrefix+"/link?token="+url.QueryEscape(old), "", nil, nil); !strings.Contains(p.body, "token is expired") {
		t.Fatalf("the expired link's page does not say so: %s", p.body)
	}
}

func TestWeb_WebLinkNeedsASigningKey(t *testing.T) {
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: &fakeCluster{}})
	admin := e.mint(token.MintOptions{Subject: "ops", Validity: time.Hour, ClusterAdmin: true})
	st, b := e.do("POST", "/_api/v1/cluster/web-link", admin, nil, nil)
	errorBody(t, "web-link without a signer", st, b, 501, "NotImplemented", "cannot sign")
	e.api.signer = verifyOnly{}
	st, b = e.do("POST", "/_api/v1/cluster/web-link", admin, nil, nil)
	errorBody(t, "web-link with a public key only", st, b, 400, "RequestError", "only the public key")
}

type verifyOnly struct{}

func (verifyOnly) Sign(*token.Claims) (string, error) { return "", token.ErrVerifyOnly }

func TestWeb_StaticAndUnknownRoutes(t *testing.T) {
	e := newTestEnv(t)
	if p := e.web("GET", WebPrefix+"/static/garret.css", "", nil, nil); p.status != 200 || !strings.Contains(p.body, "--accent") {
		t.Fatalf("stylesheet: %d", p.status)
	}
	st, b := e.do("GET", "/_api/v1/nothing-here", "", nil, nil)
	errorBody(t, "unknown API route", st, b, 404, "NotFound", "not found")
	// Names starting with "_" are the server's own, never a cache's: not a
	// 400 for a bad cache name.
	for _, r := range []struct{ method, path string }{{"GET", WebPrefix + "/nothing-here"}, {"GET", "/_api/nothing-here"},
		{"PUT", WebPrefix + "/x.narinfo"}, {"GET", WebPrefix + "/nar/x.nar"}, {"GET", "/_x/nix-cache-info"}} {
		st, b := e.do(r.method, r.path, e.root, nil, nil)
		errorBody(t, r.method+" "+r.path, st, b, 404, "NotFound", "not found")
	}
	st, b = e.do("GET", "/-bad/nix-cache-info", "", nil, nil)
	errorBody(t, "invalid cache name", st, b, 400, "RequestError", "invalid cache name")
}

func TestLayoutCluster_RegionsAndRTTs(t *testing.T) {
	st := v1.ClusterStatus{Node: "p1", Nodes: []v1.ClusterNode{
		{Name: "eu-1", PeerID: "p1", Region: "eu", Health: "alive"},
		{Name: "eu-2", PeerID: "p2", Region: "eu", Health: "alive", RTTMs: 1},
		{Name: "us-1", PeerID: "p3", Region: "us", Health: "dead", RTTMs: 140},
		{Name: "us-2", PeerID: "p4", Region: "us", Health: "alive", RTTMs: 160, Leader: true},
		{Name: "ap-1", PeerID: "p5", Region: "ap", Health: "left"},
	}}
	m := layoutCluster(st)
	if len(m.Regions) != 3 || len(m.Links) != 3 {
		t.Fatalf("%d regions, %d links", len(m.Regions), len(m.Links))
	}
	labels := map[string]bool{}
	for _, l := range m.Links {
		labels[l.Label] = l.Measured
	}
	// eu–us measured from eu-1 (mean of 140 and 160); eu–ap has no RTT;
	// ap–us is not measured from eu.
	if !labels["150 ms"] || len(labels) != 2 || labels[""] {
		t.Fatalf("link labels %v", labels)
	}
	for _, r := range m.Regions {
		if r.X < 0 || r.Y < 0 || r.X+r.W > float64(m.Width) || r.Y+r.H > float64(m.Height) {
			t.Fatalf("region %s (%v,%v %vx%v) outside the %dx%d map", r.Name, r.X, r.Y, r.W, r.H, m.Width, m.Height)
		}
		for _, n := range r.Nodes {
			if n.X < r.X || n.X > r.X+r.W {
				t.Fatalf("node %s outside its region", n.Name)
			}
		}
	}
	for _, k := range []int{1, 2, 5} {
		var st v1.ClusterStatus
		for i := range k {
			st.Nodes = append(st.Nodes, v1.ClusterNode{Name: fmt.Sprint(i), Region: fmt.Sprint("r", i)})
		}
		m := layoutCluster(st)
		for i, a := range m.Regions {
			for _, b := range m.Regions[i+1:] {
				if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
					t.Fatalf("%d regions: %s and %s overlap", k, a.Name, b.Name)
				}
			}
		}
	}
}

// TestCacheStats_BoundedAndCached: counts page through a cache, stop at the
// budget (then marked partial), and are recounted only after the TTL.
func TestCacheStats_BoundedAndCached(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("a", true)
	e.createCache("b", false)
	var narBytes int64
	for i := range 5 {
		nar := fileNAR(fmt.Sprint("object ", i))
		narBytes += int64(len(nar))
		if st, b := e.upload(e.root, uploadInfo("a", fmt.Sprint("p", i), nar), nar); st != 200 {
			t.Fatalf("upload: %d %s", st, b)
		}
	}
	cs := &cacheStats{budget: 3}
	stats, more, err := cs.get(e.cat)
	if err != nil || more != 0 || len(stats) != 2 {
		t.Fatalf("%+v %d %v", stats, more, err)
	}
	if a, b := stats[0], stats[1]; a.Name != "a" || a.Objects != 3 || !a.Partial || b.Name != "b" || b.Objects != 0 || !b.Partial || b.Public {
		t.Fatalf("with a budget of 3: %+v", stats)
	}
	cs = &cacheStats{}
	stats, _, _ = cs.get(e.cat)
	if a := stats[0]; a.Objects != 5 || a.NarBytes != narBytes || a.Partial {
		t.Fatalf("unbounded: %+v (NAR bytes %d)", a, narBytes)
	}
	nar := fileNAR("one more")
	if st, b := e.upload(e.root, uploadInfo("a", "p5", nar), nar); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	if stats, _, _ = cs.get(e.cat); stats[0].Objects != 5 {
		t.Fatalf("recounted within the TTL: %+v", stats[0])
	}
	cs.at = cs.at.Add(-cacheStatsTTL)
	if stats, _, _ = cs.get(e.cat); stats[0].Objects != 6 {
		t.Fatalf("not recounted after the TTL: %+v", stats[0])
	}
}
