package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
)

// TestUploadPath_DedupAnswersFromCallersCacheOnly: pushing to one's own
// cache a NAR that another tenant's private cache holds says nothing about
// it (Uploaded, frac_deduplicated 0); a re-push to one's own cache is
// Deduplicated.
func TestUploadPath_DedupAnswersFromCallersCacheOnly(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("bob", false)
	e.createCache("alice", false)
	alice := e.mint(token.MintOptions{Subject: "alice", Validity: time.Hour, Pull: []string{"alice"}, Push: []string{"alice"}})
	nar := dirNAR("a", "b", "c", "secret-build-input")
	if st, b := e.upload(e.root, uploadInfo("bob", "secret", nar), nar); st != 200 {
		t.Fatalf("bob's upload: %d %s", st, b)
	}
	push := func() v1.UploadPathResult {
		t.Helper()
		st, b := e.upload(alice, uploadInfo("alice", "secret", nar), nar)
		var res v1.UploadPathResult
		if st != 200 || json.Unmarshal(b, &res) != nil {
			t.Fatalf("alice's upload: %d %s", st, b)
		}
		return res
	}
	res := push()
	if res.Kind != v1.UploadKindUploaded || res.FracDeduplicated == nil || *res.FracDeduplicated != 0 || res.FileSize == nil || *res.FileSize <= 0 {
		t.Fatalf("alice's first push of a NAR only bob's cache holds: %+v", res)
	}
	if res := push(); res.Kind != v1.UploadKindDeduplicated {
		t.Fatalf("alice's re-push to her own cache: %+v", res)
	}
}
