package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/nixid"
)

// TestResolveStorePaths: links are followed into the store as Nix does,
// paths inside a store path name the store path, duplicates go, and anything
// outside the store is refused by name.
func TestResolveStorePaths(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	t.Setenv("NIX_STORE_DIR", store)
	top := filepath.Join(store, "7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-top")
	dep := filepath.Join(store, "2kzak5jysx3z91k220cd1cxh527hl7wy-dep")
	for _, d := range []string{filepath.Join(top, "bin"), dep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	result := link(top, "result")
	chain := link("result", "result-2") // relative, through another link
	inside := link(filepath.Join(dep, "numbers"), "numbers")
	got, err := resolveStorePaths([]string{result, chain, top + "/bin", inside, dep})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{top, dep}) {
		t.Errorf("got %q", got)
	}

	loop := link("loop-b", "loop-a")
	link("loop-a", "loop-b")
	for _, bad := range []string{dir, link(dir, "elsewhere"), loop, store} {
		if _, err := resolveStorePaths([]string{bad}); err == nil || !strings.Contains(err.Error(), bad+" is not in the Nix store ("+store+")") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestUploadInfo_AtticForm: upload-path's JSON is what Attic's client sends —
// the NAR hash as "sha256:<hex>" (atticd refuses SRI), references and
// deriver as base names, signatures a list even when empty.
func TestUploadInfo_AtticForm(t *testing.T) {
	sum := nixid.NarHash(sha256.Sum256([]byte("nar")))
	in := pathInfo{Path: "/nix/store/7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-top", NarHash: sum, NarSize: 336,
		References: []string{"/nix/store/2kzak5jysx3z91k220cd1cxh527hl7wy-dep"},
		Deriver:    "/nix/store/2y8cb6jcc7jr1f9ihbzijjpykaqshqr5-top.drv"}
	b, err := json.Marshal(uploadInfo("dev", in))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if h := got["nar_hash"]; h != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("nar_hash %v", h)
	}
	if back, err := nixid.ParseNarHash(got["nar_hash"].(string)); err != nil || back != sum {
		t.Errorf("Garret's server reads it back as %v, %v", back, err)
	}
	if got["store_path_hash"] != "7nl41rq7vq2qabi6j89fxnfmyk3fx1zr" || got["deriver"] != "2y8cb6jcc7jr1f9ihbzijjpykaqshqr5-top.drv" ||
		!slices.Equal(got["references"].([]any), []any{"2kzak5jysx3z91k220cd1cxh527hl7wy-dep"}) || got["sigs"] == nil || got["ca"] != nil {
		t.Errorf("upload info %s", b)
	}
}

// TestToUpload: largest first, and only the hashes we asked about, once each.
func TestToUpload(t *testing.T) {
	small := pathInfo{Path: "/nix/store/7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-small", NarSize: 10}
	big := pathInfo{Path: "/nix/store/2kzak5jysx3z91k220cd1cxh527hl7wy-big", NarSize: 1 << 40}
	byHash := map[string]pathInfo{"7nl41rq7vq2qabi6j89fxnfmyk3fx1zr": small, "2kzak5jysx3z91k220cd1cxh527hl7wy": big}
	got := toUpload(byHash, []string{"7nl41rq7vq2qabi6j89fxnfmyk3fx1zr", "00000000000000000000000000000000", "2kzak5jysx3z91k220cd1cxh527hl7wy", "7nl41rq7vq2qabi6j89fxnfmyk3fx1zr"})
	if len(got) != 2 || got[0].Path != big.Path || got[1].Path != small.Path {
		t.Errorf("got %+v", got)
	}
	if got := toUpload(byHash, []string{"00000000000000000000000000000000"}); len(got) != 0 {
		t.Errorf("an unknown hash was queued: %+v", got)
	}
}
