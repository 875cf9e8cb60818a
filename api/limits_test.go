package api

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
)

// TestUploadPath_OverTheCatalogBounds: a narinfo field past its bound in the
// catalog (limits.go) is a 400 that stores nothing.
func TestUploadPath_OverTheCatalogBounds(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	sig := base64.StdEncoding.EncodeToString(make([]byte, 64))
	for name, tweak := range map[string]func(i *v1.UploadPathNarInfo){
		"too many signatures": func(i *v1.UploadPathNarInfo) {
			for k := range catalog.MaxSigs + 1 {
				i.Sigs = append(i.Sigs, fmt.Sprintf("key%d.example-1:%s", k, sig))
			}
		},
		"a long signature": func(i *v1.UploadPathNarInfo) {
			i.Sigs = []string{"key.example-1:" + sig + strings.Repeat("A", catalog.MaxSigBytes)}
		},
	} {
		nar := fileNAR(name)
		info := uploadInfo("main", "bounded-1.0", nar)
		tweak(&info)
		st, body := e.upload(e.root, info, nar)
		if st != 400 || !strings.Contains(string(body), "signature") {
			t.Errorf("%s: %d %s", name, st, body)
		}
		if got := e.missing("main", info.StorePathHash); len(got) != 1 {
			t.Errorf("%s: stored anyway", name)
		}
	}
}
