package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster"
)

// fakeCluster records the admin calls and answers with the errors set.
type fakeCluster struct {
	joined             []string
	left               bool
	removed            string
	joinErr, removeErr error
	leaveErr           error
	joinContacted      int
	removeStillAlive   bool
	nodes              []v1.NodeEndpoint // LiveNodes; nil: eu-1 and us-1
	status             *v1.ClusterStatus // ClusterStatus; nil: eu-1 alone, term 3
}

func (f *fakeCluster) ClusterStatus(context.Context) v1.ClusterStatus {
	if f.status != nil {
		return *f.status
	}
	return v1.ClusterStatus{Node: "eu-1", Term: 3}
}

func (f *fakeCluster) LiveNodes() []v1.NodeEndpoint {
	if f.nodes != nil {
		return slices.Clone(f.nodes)
	}
	return []v1.NodeEndpoint{{Name: "eu-1", Region: "eu", APIURL: "http://eu.example/"}, {Name: "us-1", Region: "us", APIURL: "http://us.example"}}
}

func (f *fakeCluster) JoinCluster(addrs []string) (int, error) {
	if f.joinErr != nil {
		return 0, f.joinErr
	}
	f.joined = append(f.joined, addrs...)
	return f.joinContacted, nil
}

func (f *fakeCluster) LeaveCluster() (v1.ClusterLeaveResponse, error) {
	if f.leaveErr != nil {
		return v1.ClusterLeaveResponse{}, f.leaveErr
	}
	f.left = true
	return v1.ClusterLeaveResponse{Node: "eu-1", Message: "eu-1 is leaving"}, nil
}

func (f *fakeCluster) RemoveNode(_ context.Context, node string) (v1.ClusterRemoveResponse, error) {
	if f.removeErr != nil {
		return v1.ClusterRemoveResponse{}, f.removeErr
	}
	f.removed = node
	return v1.ClusterRemoveResponse{Node: node, PeerID: "12D3KooWx", StillAlive: f.removeStillAlive}, nil
}

// errorBody decodes an Attic-style error and checks its code.
func errorBody(t *testing.T, what string, st int, b []byte, wantStatus int, wantKind, wantText string) {
	t.Helper()
	var e v1.ErrorResponse
	if err := json.Unmarshal(b, &e); err != nil || st != wantStatus || e.Code != wantStatus || e.Error != wantKind || !strings.Contains(e.Message, wantText) {
		t.Fatalf("%s: %d %s (want %d %s containing %q)", what, st, b, wantStatus, wantKind, wantText)
	}
}

func TestClusterAdmin_Permissions(t *testing.T) {
	fc := &fakeCluster{}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: fc})
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/_api/v1/cluster", ""},
		{"POST", "/_api/v1/cluster/join", `{"addrs":["eu-1:7946"]}`},
		{"POST", "/_api/v1/cluster/leave", ""},
		{"POST", "/_api/v1/cluster/remove", `{"node":"us-1"}`},
	} {
		st, b := e.do(r.method, r.path, "", strings.NewReader(r.body), nil)
		errorBody(t, "anonymous "+r.path, st, b, 401, "Unauthorized", "")
		st, b = e.do(r.method, r.path, e.root, strings.NewReader(r.body), nil)
		errorBody(t, "without cluster-admin "+r.path, st, b, 403, "AccessError", "cluster-admin")
	}
	if len(fc.joined) != 0 || fc.left || fc.removed != "" {
		t.Fatalf("a refused request reached the cluster: %+v", fc)
	}
}

func TestClusterAdmin_BadInputAndErrors(t *testing.T) {
	fc := &fakeCluster{}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: fc})
	admin := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true})
	post := func(path, body string) (int, []byte) {
		return e.do("POST", path, admin, strings.NewReader(body), nil)
	}
	for _, body := range []string{`{"addrs":[]}`, `{}`, `{"addrs":["eu-1"]}`, `{"addrs":[":7946"]}`, `{"addrs":["eu-1:http"]}`, `{"addrs":["eu-1:0"]}`, `{"addrs":"eu-1:7946"}`, `not json`} {
		st, b := post("/_api/v1/cluster/join", body)
		errorBody(t, "join "+body, st, b, 400, "RequestError", "")
	}
	many := make([]string, maxJoinAddrs+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("n%d:7946", i))
	}
	st, b := post("/_api/v1/cluster/join", `{"addrs":[`+strings.Join(many, ",")+`]}`)
	errorBody(t, "join with too many addresses", st, b, 400, "RequestError", "gossip addresses")
	for _, body := range []string{`{"node":""}`, `{}`, `[1]`} {
		st, b := post("/_api/v1/cluster/remove", body)
		errorBody(t, "remove "+body, st, b, 400, "RequestError", "")
	}
	if len(fc.joined) != 0 || fc.removed != "" {
		t.Fatalf("bad input reached the cluster: %+v", fc)
	}

	// The cluster's own refusals keep their status and message.
	fc.joinErr = refusedErr("this node has no gossip configured: set [cluster] gossip-listen")
	st, b = post("/_api/v1/cluster/join", `{"addrs":["eu-1:7946"]}`)
	errorBody(t, "join without gossip", st, b, 400, "RequestError", "set [cluster] gossip-listen")
	fc.leaveErr = refusedErr("this node is not in a cluster")
	st, b = post("/_api/v1/cluster/leave", "")
	errorBody(t, "leave without gossip", st, b, 400, "RequestError", "not in a cluster")
	fc.removeErr = &cluster.Error{Kind: cluster.ErrNoSuchNode, Message: `no node "nope" in the Raft configuration or in gossip`}
	st, b = post("/_api/v1/cluster/remove", `{"node":"nope"}`)
	errorBody(t, "remove an unknown node", st, b, 404, "NoSuchNode", `no node "nope"`)
	fc.removeErr = refusedErr("eu-1 is the leader: run garret cluster leave on that node instead")
	st, b = post("/_api/v1/cluster/remove", `{"node":"eu-1"}`)
	errorBody(t, "remove the leader", st, b, 400, "RequestError", "garret cluster leave")
	fc.removeErr = fmt.Errorf("%w: cannot reach the leader", catalog.ErrNotLeader)
	st, b = post("/_api/v1/cluster/remove", `{"node":"us-1"}`)
	errorBody(t, "remove without a leader", st, b, 503, "ServiceUnavailable", "cannot reach the leader")
	fc.removeErr = fmt.Errorf("raft exploded")
	st, b = post("/_api/v1/cluster/remove", `{"node":"us-1"}`)
	errorBody(t, "remove failing inside", st, b, 500, "InternalServerError", "")
}

func TestClusterAdmin_Success(t *testing.T) {
	fc := &fakeCluster{joinContacted: 2, removeStillAlive: true}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: fc})
	admin := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true})

	st, b := e.do("POST", "/_api/v1/cluster/join", admin, strings.NewReader(`{"addrs":["eu-1.example.net:7946","[::1]:7946"]}`), nil)
	var join v1.ClusterJoinResponse
	if st != 200 || json.Unmarshal(b, &join) != nil || join.Contacted != 2 || !slices.Equal(fc.joined, []string{"eu-1.example.net:7946", "[::1]:7946"}) {
		t.Fatalf("join: %d %s, joined %v", st, b, fc.joined)
	}
	st, b = e.do("POST", "/_api/v1/cluster/leave", admin, nil, nil)
	var leave v1.ClusterLeaveResponse
	if st != 200 || json.Unmarshal(b, &leave) != nil || leave.Node != "eu-1" || !fc.left {
		t.Fatalf("leave: %d %s", st, b)
	}
	st, b = e.do("POST", "/_api/v1/cluster/remove", admin, strings.NewReader(`{"node":"us-1"}`), nil)
	var rm v1.ClusterRemoveResponse
	if st != 200 || json.Unmarshal(b, &rm) != nil || rm.Node != "us-1" || !rm.StillAlive || fc.removed != "us-1" {
		t.Fatalf("remove: %d %s", st, b)
	}
	st, b = e.do("GET", "/_api/v1/cluster", admin, nil, nil)
	var status v1.ClusterStatus
	if st != 200 || json.Unmarshal(b, &status) != nil || status.Term != 3 {
		t.Fatalf("status: %d %s", st, b)
	}
}

func refusedErr(msg string) error { return &cluster.Error{Kind: cluster.ErrRefused, Message: msg} }

// TestCacheConfig_NodesAndPriorityOffset: in a cluster, the cache config
// lists every live node's substituter URL for the cache (for garret use);
// nix-cache-info answers the cache's priority plus the node's offset.
func TestCacheConfig_NodesAndPriorityOffset(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PriorityOffset = 2
	e := newTestEnvDeps(t, cfg, Deps{Cluster: &fakeCluster{}})
	e.createCache("hello", false)
	st, b := e.do("GET", "/_api/v1/cache-config/hello", e.root, nil, nil)
	var cc v1.CacheConfig
	if st != 200 || json.Unmarshal(b, &cc) != nil {
		t.Fatalf("cache-config: %d %s", st, b)
	}
	want := []v1.CacheNode{{Name: "eu-1", Region: "eu", SubstituterEndpoint: "http://eu.example/hello"},
		{Name: "us-1", Region: "us", SubstituterEndpoint: "http://us.example/hello"}}
	if !slices.Equal(cc.Nodes, want) {
		t.Fatalf("garret_nodes %+v, want %+v", cc.Nodes, want)
	}
	if st, b := e.do("GET", "/hello/nix-cache-info", e.root, nil, nil); st != 200 || !strings.Contains(string(b), "Priority: 43\n") {
		t.Fatalf("nix-cache-info with priority-offset 2 on a cache of priority 41: %d %s", st, b)
	}

	lone := newTestEnv(t) // no cluster: no node list, the cache's own priority
	lone.createCache("hello", false)
	_, b = lone.do("GET", "/_api/v1/cache-config/hello", lone.root, nil, nil)
	if strings.Contains(string(b), "garret_nodes") {
		t.Fatalf("a lone node lists nodes: %s", b)
	}
	if _, b := lone.do("GET", "/hello/nix-cache-info", lone.root, nil, nil); !strings.Contains(string(b), "Priority: 41\n") {
		t.Fatalf("nix-cache-info: %s", b)
	}
}
