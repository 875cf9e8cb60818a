package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
)

func TestDeletePaths_NeedsDeleteAndHidesAtOnce(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := fileNAR("to be deleted")
	info := uploadInfo("main", "del-1", nar)
	if st, b := e.upload(e.root, info, nar); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	body := `{"cache":"main","store_path_hashes":["` + info.StorePathHash + `"]}`
	pushOnly := e.mint(token.MintOptions{Subject: "p", Validity: time.Hour, Push: []string{"main"}, Pull: []string{"main"}})
	if st, _ := e.do("POST", "/_api/v1/delete-paths", pushOnly, strings.NewReader(body), nil); st != 403 {
		t.Fatalf("delete without d: %d", st)
	}
	if st, _ := e.do("POST", "/_api/v1/delete-paths", "", strings.NewReader(body), nil); st != 401 {
		t.Fatalf("anonymous delete: %d", st)
	}
	st, b := e.do("POST", "/_api/v1/delete-paths", e.root, strings.NewReader(body), nil)
	var res v1.DeletePathsResponse
	if st != 200 || json.Unmarshal(b, &res) != nil || res.Deleted != 1 {
		t.Fatalf("delete: %d %s", st, b)
	}
	if st, _ := e.do("GET", "/main/"+info.StorePathHash+".narinfo", e.root, nil, nil); st != 404 {
		t.Fatalf("narinfo after delete: %d", st)
	}
	if e.sweepChunks() != 0 {
		t.Fatal("chunks of a deleted path survived a sweep")
	}
}

func TestRevokeToken_ClusterWideAnonymous(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	victim := e.mint(token.MintOptions{Subject: "v", Validity: time.Hour, Pull: []string{"main"}})
	if st, _ := e.do("GET", "/main/nix-cache-info", victim, nil, nil); st != 200 {
		t.Fatalf("before revocation: %d", st)
	}
	req, _ := json.Marshal(v1.RevokeTokenRequest{Token: victim})
	if st, _ := e.do("POST", "/_api/v1/revoke-token", e.root, bytes.NewReader(req), nil); st != 403 {
		t.Fatalf("revoke without cluster-admin: %d", st)
	}
	admin := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true})
	st, b := e.do("POST", "/_api/v1/revoke-token", admin, bytes.NewReader(req), nil)
	if st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	st, b = e.do("GET", "/main/nix-cache-info", victim, nil, nil)
	if st != 401 || !strings.Contains(string(b), "revoked") {
		t.Fatalf("after revocation: %d %s", st, b)
	}
	if st, _ := e.do("POST", "/_api/v1/revoke-token", admin, strings.NewReader(`{"token":"garbage"}`), nil); st != 400 {
		t.Fatalf("garbage token: %d", st)
	}
}

func TestListCaches_OnlyDiscoverable(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("mine", false)
	e.createCache("theirs", false)
	e.createCache("open", true)
	tok := e.mint(token.MintOptions{Subject: "m", Validity: time.Hour, Pull: []string{"mine"}})
	st, b := e.do("GET", "/_api/v1/caches", tok, nil, nil)
	var res v1.ListCachesResponse
	if st != 200 || json.Unmarshal(b, &res) != nil {
		t.Fatalf("list: %d %s", st, b)
	}
	var names []string
	for _, c := range res.Caches {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "mine,open" {
		t.Fatalf("listed %v", names)
	}
}

func TestClusterStatus_NeedsClusterAdmin(t *testing.T) {
	e := newTestEnv(t)
	if st, _ := e.do("GET", "/_api/v1/cluster", e.root, nil, nil); st != 403 {
		t.Fatalf("cluster status without cluster-admin: %d", st)
	}
	if st, _ := e.do("GET", "/_api/v1/cluster", "", nil, nil); st != 401 {
		t.Fatalf("anonymous cluster status: %d", st)
	}
}
