package api

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/internal/narinfo"
)

// TestStaging_PerCacheQuota: a tenant that uploads NARs and never sends
// their narinfos fills its own cache's quota (then 429), and cannot push
// out another cache's staged upload, which still commits.
func TestStaging_PerCacheQuota(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxStaged, cfg.MaxStagedPerCache = 6, 3
	e := newTestEnvWith(t, cfg)
	e.createCache("main", false)
	e.createCache("mallory", false)
	mallory := e.mint(token.MintOptions{Subject: "mallory", Validity: time.Hour, Push: []string{"mallory"}})

	// main stages one NAR first.
	nar := dirNAR("victim")
	h, p := testPath("victim")
	url := "nar/" + h + ".nar"
	if st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(nar), nil); st != 200 {
		t.Fatalf("main's NAR: %d %s", st, b)
	}
	// mallory fills its quota, then is refused before its body is read.
	for i := range 7 {
		junk := dirNAR("junk" + strings.Repeat("x", i))
		jh, _ := testPath("junk" + strings.Repeat("x", i))
		st, b := e.do("PUT", "/mallory/nar/"+jh+".nar", mallory, bytes.NewReader(junk), nil)
		want := 200
		if i >= 3 {
			want = 429
		}
		if st != want || (want == 429 && !strings.Contains(string(b), "TooManyStagedUploads")) {
			t.Fatalf("mallory's NAR %d: %d %s, want %d", i, st, b, want)
		}
	}
	// main's staged NAR is still there: its narinfo commits it.
	ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: "none", NarHash: narHashOf(nar), NarSize: uint64(len(nar)), References: []string{}}
	if st, b := e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 200 {
		t.Fatalf("main's narinfo after mallory's flood: %d %s", st, b)
	}
	if st, _ := e.do("GET", "/main/"+h+".narinfo", e.root, nil, nil); st != 200 {
		t.Fatal("main's path was not committed")
	}
	// The committed upload gave its slot back; main can stage 3 more.
	for i := range 3 {
		n := dirNAR("more" + strings.Repeat("y", i))
		mh, _ := testPath("more" + strings.Repeat("y", i))
		if st, b := e.do("PUT", "/main/nar/"+mh+".nar", e.root, bytes.NewReader(n), nil); st != 200 {
			t.Fatalf("main's NAR %d: %d %s", i, st, b)
		}
	}
}

func TestStaging_ReservationsAndExpiry(t *testing.T) {
	st := newStaging(50*time.Millisecond, 2, 2)
	r1, err := st.reserve("a")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := st.reserve("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.reserve("b"); err == nil {
		t.Fatal("a reservation past the node's cap")
	}
	st.put("a", "nar/1.nar", staged{at: time.Now()})
	r1()
	r1() // a second release is a no-op
	r2() // failed upload: slot back
	if st.total != 1 || st.count["a"] != 1 {
		t.Fatalf("total %d, a %d", st.total, st.count["a"])
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := st.reserve("b"); err != nil {
		t.Fatal(err)
	}
	if st.total != 1 || st.count["a"] != 0 {
		t.Fatalf("after expiry: total %d, a %d", st.total, st.count["a"])
	}
}
