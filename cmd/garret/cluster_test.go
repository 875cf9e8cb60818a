package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
)

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, v1.ClusterStatus{Node: "eu-1", Term: 4, AppliedIndex: 7, CommitIndex: 7, Nodes: []v1.ClusterNode{
		{Name: "eu-1", Region: "eu", Health: "alive", Role: "voter", Leader: true, APIURL: "http://a/", State: "leader", AppliedIndex: 7, Term: 4,
			Replication: &v1.ReplicationStatus{}},
		{Name: "us-1", Region: "us", Health: "alive", Role: "nonvoter", RTTMs: 151.2, State: "follower", AppliedIndex: 5, Term: 4,
			Replication: &v1.ReplicationStatus{Backlog: 3, BacklogBytes: 3 << 20, LagSeconds: 2.54, FetchBytesPerSecond: 12 << 20,
				Fetched: 40, FrameBytes: 200 << 20, Failed: 1}},
		{Name: "us-2", Region: "us", Health: "suspect", Role: "voter", Unreachable: true},
	}, Departed: []v1.DepartedNode{{Name: "eu-9", Region: "eu", Health: "left", Since: time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)}}})
	out := b.String()
	for _, want := range []string{"term 4; applied 7 of 7", "STATE", "APPLIED", "TERM", "151.2 ms", "nonvoter"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status output lacks %q:\n%s", want, out)
		}
	}
	for _, row := range []string{
		`(?m)^eu-1 +eu +alive +voter +\* +- +leader +7 +4 +http://a/$`,
		`(?m)^us-1 +us +alive +nonvoter +151\.2 ms +follower +5 +4 *$`,
		`(?m)^us-2 +us +suspect +voter +- +unreachable +- +- *$`,
		`(?m)^eu-9 +eu +left +since 2026-12-04T06:00:00Z$`,
		`(?m)^eu-1 +0 +0\.0 MiB +0s +0\.0 MiB/s +0 +0\.0 MiB +0$`,
		`(?m)^us-1 +3 +3\.0 MiB +2\.5s +12\.0 MiB/s +40 +200\.0 MiB +1$`,
		`(?m)^us-2( +-){7}$`,
		`(?m)^copies below target: 3 `,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Fatalf("status output has no row matching %s:\n%s", row, out)
		}
	}
}

// TestClusterCommands: join, leave and remove send their requests with the
// token; an error answer becomes a one-line error.
func TestClusterCommands(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+strings.TrimSpace(string(b)))
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_api/v1/cluster/join":
			_, _ = io.WriteString(w, `{"contacted":1}`)
		case "/_api/v1/cluster/leave":
			_, _ = io.WriteString(w, `{"node":"eu-1","message":"eu-1 is leaving"}`)
		default:
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"code":404,"error":"NoSuchNode","message":"no node \"ghost\" in the Raft configuration or in gossip"}`)
		}
	}))
	defer srv.Close()
	useTestServer(t, srv.URL)
	run := func(args ...string) error {
		cmd := rootCmd()
		cmd.SetArgs(args)
		return cmd.Execute()
	}
	if err := run("cluster", "join", "eu-1:7946", "eu-2:7946"); err != nil {
		t.Fatal(err)
	}
	if err := run("cluster", "leave"); err != nil {
		t.Fatal(err)
	}
	err := run("cluster", "remove", "ghost")
	if err == nil || err.Error() != `NoSuchNode: no node "ghost" in the Raft configuration or in gossip` {
		t.Fatalf("remove of an unknown node: %v", err)
	}
	if err := run("cluster", "remove"); err == nil {
		t.Fatal("remove without a node accepted")
	}
	want := []string{
		`POST /_api/v1/cluster/join bearer T {"addrs":["eu-1:7946","eu-2:7946"]}`,
		`POST /_api/v1/cluster/leave bearer T `,
		`POST /_api/v1/cluster/remove bearer T {"node":"ghost"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClusterStatusWeb: --web asks for a link and prints it alone on
// stdout; a refusal or an answer that is not a link is a one-line error.
func TestClusterStatusWeb(t *testing.T) {
	answer := `{"url":"http://eu.example:8080/_garret/link?token=abc","expires_at":"2030-01-01T00:10:00Z"}`
	status := 200
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	useTestServer(t, srv.URL)
	c, err := connectServer("")
	if err != nil {
		t.Fatal(err)
	}
	var out, info bytes.Buffer
	if err := printWebLink(c, &out, &info); err != nil {
		t.Fatal(err)
	}
	if out.String() != "http://eu.example:8080/_garret/link?token=abc\n" || !strings.Contains(info.String(), "Open it in a browser before") {
		t.Fatalf("printed %q, then %q", out.String(), info.String())
	}
	if len(got) != 1 || got[0] != "POST /_api/v1/cluster/web-link bearer T" {
		t.Fatalf("requests %q", got)
	}
	status, answer = 403, `{"code":403,"error":"AccessError","message":"Access error: a web link to the cluster page needs the cluster-admin permission (garretd make-token --cluster-admin)."}`
	cmd := rootCmd()
	cmd.SetArgs([]string{"cluster", "status", "--web"})
	if err := cmd.Execute(); err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "cluster-admin") {
		t.Fatalf("refused link: %v", err)
	}
	status, answer = 200, `{"url":"javascript:alert(1)"}`
	if err := printWebLink(c, &out, &info); err == nil || !strings.Contains(err.Error(), "not a web link") {
		t.Fatalf("a bad answer: %v", err)
	}
	cmd = rootCmd()
	cmd.SetArgs([]string{"cluster", "status", "--web", "--json"})
	if err := cmd.Execute(); err == nil {
		t.Fatal("--web with --json accepted")
	}
}
