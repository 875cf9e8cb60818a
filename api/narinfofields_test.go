package api

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

const injected = "x86_64-linux\nURL: https://evil.example/nar/x.nar\nCompression: none"

// TestUploadPath_NarInfoFieldsValidated: a field that would add a line to
// the served narinfo, or is not in Nix's format, is a 400 that stores
// nothing (the NAR is not even read).
func TestUploadPath_NarInfoFieldsValidated(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := dirNAR("fields")
	str := func(s string) *string { return &s }
	for name, tc := range map[string]func(*narinfoFields){
		"system":    func(f *narinfoFields) { f.system = str(injected) },
		"deriver":   func(f *narinfoFields) { f.deriver = str("0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a.drv\nURL: x") },
		"ca":        func(f *narinfoFields) { f.ca = str("fixed:sha256:not-a-hash") },
		"sig":       func(f *narinfoFields) { f.sigs = []string{"k:AAAA\nURL: x"} },
		"store dir": func(f *narinfoFields) { f.storePath = strings.Replace(f.storePath, "/nix/store", "/gnu/store", 1) },
	} {
		info := uploadInfo("main", "fields", nar)
		f := narinfoFields{storePath: info.StorePath}
		tc(&f)
		info.StorePath, info.System, info.Deriver, info.CA = f.storePath, f.system, f.deriver, f.ca
		if f.sigs != nil {
			info.Sigs = f.sigs
		}
		st, b := e.upload(e.root, info, nar)
		if st != 400 || !strings.Contains(string(b), `"RequestError"`) {
			t.Errorf("%s: %d %s", name, st, b)
		}
		if m := e.missing("main", info.StorePathHash); len(m) != 1 {
			t.Fatalf("%s: the path was stored", name)
		}
	}
	if n := e.sweepChunks(); n != 0 {
		t.Fatalf("%d chunks left behind by refused uploads", n)
	}
}

type narinfoFields struct {
	storePath           string
	system, deriver, ca *string
	sigs                []string
}

// TestNixPut_NarInfoFieldsValidated: Nix's narinfo PUT runs the same checks.
func TestNixPut_NarInfoFieldsValidated(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	nar := dirNAR("nixput-fields")
	h, p := testPath("nixput-fields")
	url := "nar/" + h + ".nar"
	if st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(nar), nil); st != 200 {
		t.Fatalf("PUT NAR: %d %s", st, b)
	}
	for _, extra := range []string{"System: x86 64\n", "CA: sha256:abc\n", "Sig: k:AAAA\n", "Deriver: 0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a\n", "System: x86_64-linux\x1b[2J\n"} {
		ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: "none", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
		st, b := e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()+extra), nil)
		if st != 400 {
			t.Errorf("%q: %d %s", extra, st, b)
		}
	}
	if m := e.missing("main", h); len(m) != 1 {
		t.Fatal("an invalid narinfo was stored")
	}
}

// TestNarInfo_RendererRefusesInjectedLines: a catalog entry with a newline
// in a field (written before validation existed, or by a buggy peer) is
// answered with an error, never rendered into extra lines.
func TestNarInfo_RendererRefusesInjectedLines(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	h, p := testPath("bad-entry")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.cat.PutObject(ctx, catalog.Object{Cache: "main", StorePathHash: nixid.StorePathHash(h), StorePath: p,
		References: []string{}, System: injected, NarHash: narHashOf([]byte("x")), NarSize: 1, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	st, b := e.do("GET", "/main/"+h+".narinfo", e.root, nil, nil)
	if st == 200 || strings.Contains(string(b), "evil") {
		t.Fatalf("served %d %q", st, b)
	}
}
