package narinfo

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// The testdata narinfos were written by Nix 2.8 (`nix copy --to
// file://…?compression=xz&secret-key=testdata/garret-test-1.sec`) for a text
// file "top" referring to a directory "dep".
func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t testing.TB, text string) *NarInfo {
	t.Helper()
	ni, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return ni
}

func TestParse_NixOutputRoundTrips(t *testing.T) {
	for _, name := range []string{"top.narinfo", "dep.narinfo"} {
		t.Run(name, func(t *testing.T) {
			text := readFile(t, name)
			if got := mustParse(t, text).String(); got != text {
				t.Fatalf("re-rendered differs:\n%s\nwant:\n%s", got, text)
			}
		})
	}
}

func TestParse_Fields(t *testing.T) {
	ni := mustParse(t, readFile(t, "top.narinfo"))
	hash, _ := nixid.ParseNarHash("sha256:1392rllypc8m8gk8cis0cibx706q0pysxwq6nq4iilz8k5xvfw14")
	want := &NarInfo{
		StorePath:   "/nix/store/j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top",
		URL:         "nar/1c1zpmd3gyyz0qbx1y8xr70g69cq44045qwcj92vf5zc9l2y0dv7.nar.xz",
		Compression: "xz",
		FileHash:    "sha256:1c1zpmd3gyyz0qbx1y8xr70g69cq44045qwcj92vf5zc9l2y0dv7",
		FileSize:    176,
		NarHash:     hash,
		NarSize:     168,
		References:  []string{"7fz1x56lz225dgf7k1h612icsx3nngwn-dep"},
		CA:          "text:sha256:1fi68nbadpmyy0j5vwsmfwa4bifal0yzl0da5zd3gc744q74lfll",
		Sigs:        []string{"garret-test-1:2ek+UIk2sIOxpypTcvuEC//eLd321rUqywfjsbaWm2gWdbe279sscqQTPbl6YeduvQ6haFTlFMFYWA4JKuJZDQ=="},
	}
	if !reflect.DeepEqual(ni, want) {
		t.Fatalf("got  %#v\nwant %#v", ni, want)
	}
}

func TestString_RoundTrip(t *testing.T) {
	hash, _ := nixid.ParseNarHash("sha256:1392rllypc8m8gk8cis0cibx706q0pysxwq6nq4iilz8k5xvfw14")
	for name, ni := range map[string]*NarInfo{
		"minimal": {StorePath: "/nix/store/j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top", URL: "nar/x.nar", Compression: "none",
			NarHash: hash, NarSize: 1, References: []string{}},
		"everything": {StorePath: "/gnu/store/j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top", URL: "https://x/nar/a.nar.zst?x=1",
			Compression: "zstd", FileHash: "sha256:1c1zpmd3gyyz0qbx1y8xr70g69cq44045qwcj92vf5zc9l2y0dv7", FileSize: 9,
			NarHash: hash, NarSize: 168, References: []string{"7fz1x56lz225dgf7k1h612icsx3nngwn-dep", "j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top"},
			Deriver: "i38x05467piw08f496qf24286lfh348v-top.drv", System: "x86_64-linux", CA: "fixed:r:sha256:x",
			Sigs: []string{"a:b", "c:d"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := mustParse(t, ni.String()); !reflect.DeepEqual(got, ni) {
				t.Fatalf("got  %#v\nwant %#v", got, ni)
			}
		})
	}
}

func TestString_FieldOrder(t *testing.T) {
	ni := mustParse(t, readFile(t, "top.narinfo"))
	ni.Deriver, ni.System, ni.Sigs = "i38x05467piw08f496qf24286lfh348v-top.drv", "x86_64-linux", []string{"k:1", "k:2"}
	ni.References = nil
	var keys []string
	for _, line := range strings.Split(strings.TrimSuffix(ni.String(), "\n"), "\n") {
		k, _, _ := strings.Cut(line, ": ")
		keys = append(keys, k)
	}
	want := "StorePath URL Compression FileHash FileSize NarHash NarSize References Deriver System Sig Sig CA"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	if !strings.Contains(ni.String(), "\nReferences: \n") {
		t.Fatalf("empty References line missing:\n%s", ni)
	}
}

// TestString_OneBuffer: the narinfo cache keeps what String returns, so it
// is built in one buffer of exactly its size, not line by line.
func TestString_OneBuffer(t *testing.T) {
	ni := mustParse(t, readFile(t, "top.narinfo"))
	ni.Deriver, ni.System, ni.Sigs = "i38x05467piw08f496qf24286lfh348v-top.drv", "x86_64-linux", []string{"k:1", "k:2"}
	want := ni.String()
	// The buffer, the lines, and the strings of NarHash, NarSize and
	// FileSize: 7 (line by line it was 16).
	if n := testing.AllocsPerRun(100, func() {
		if ni.String() != want {
			t.Fatal("String changed")
		}
	}); n > 8 {
		t.Fatalf("String made %.0f allocations, want at most 8", n)
	}
}

const base = "StorePath: /nix/store/7fz1x56lz225dgf7k1h612icsx3nngwn-dep\nURL: nar/x.nar\n" +
	"NarHash: sha256:1hcry1l4ks4cjaxf19jliraw6lv3ka3apb8601l4pq91gn1byr5w\nNarSize: 288\n"

func TestParse_Lenient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		check func(*NarInfo) bool
	}{
		{"minimal, Compression defaults to bzip2", base, func(n *NarInfo) bool { return n.Compression == "bzip2" && n.References != nil }},
		{"unknown keys ignored", "Foo: bar\n" + base + "X-Attic: 1\n", func(n *NarInfo) bool { return n.URL == "nar/x.nar" }},
		{"References without trailing space", base + "References:\n", func(n *NarInfo) bool { return len(n.References) == 0 }},
		{"References with trailing space", base + "References: \n", func(n *NarInfo) bool { return len(n.References) == 0 }},
		{"value containing ': '", base + "CA: fixed:r:sha256: x\n", func(n *NarInfo) bool { return n.CA == "fixed:r:sha256: x" }},
		{"value without space after the colon", base + "System:x86_64-linux\n", func(n *NarInfo) bool { return n.System == "x86_64-linux" }},
		{"CRLF line ends", strings.ReplaceAll(base, "\n", "\r\n"), func(n *NarInfo) bool { return n.NarSize == 288 }},
		{"no final newline", strings.TrimSuffix(base, "\n"), func(n *NarInfo) bool { return n.NarSize == 288 }},
		{"blank lines", "\n" + base + "\n\n", func(n *NarInfo) bool { return n.NarSize == 288 }},
		{"unknown-deriver", base + "Deriver: unknown-deriver\n", func(n *NarInfo) bool { return n.Deriver == "" }},
		{"Sig lines accumulate, empty and repeated dropped", base + "Sig: a:1\nSig:\nSig: b:2\nSig: a:1\n",
			func(n *NarInfo) bool { return reflect.DeepEqual(n.Sigs, []string{"a:1", "b:2"}) }},
		{"explicit empty Compression", base + "Compression: \n", func(n *NarInfo) bool { return n.Compression == "bzip2" }},
		{"FileHash in hex", base + "FileHash: sha256:" + strings.Repeat("ab", 32) + "\n", func(n *NarInfo) bool { return len(n.FileHash) == 71 }},
		{"NarHash in hex", strings.Replace(base, "sha256:1hcry1l4ks4cjaxf19jliraw6lv3ka3apb8601l4pq91gn1byr5w",
			"sha256:"+strings.Repeat("00", 32), 1), func(n *NarInfo) bool { return n.NarHash.IsZero() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ni, err := Parse(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(ni) {
				t.Fatalf("unexpected result %#v", ni)
			}
		})
	}
}

func TestParse_Rejects(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"missing StorePath", strings.Replace(base, "StorePath", "Path", 1), "StorePath missing"},
		{"missing URL", strings.Replace(base, "URL: nar/x.nar\n", "", 1), "URL missing"},
		{"missing NarHash", strings.Replace(base, "NarHash", "Hash", 1), "NarHash missing"},
		{"missing NarSize", strings.Replace(base, "NarSize: 288\n", "", 1), "NarSize missing or zero"},
		{"zero NarSize", strings.Replace(base, "NarSize: 288", "NarSize: 0", 1), "NarSize missing or zero"},
		{"negative NarSize", strings.Replace(base, "NarSize: 288", "NarSize: -8", 1), "line 4: NarSize"},
		{"bad FileSize", base + "FileSize: 12k\n", "line 5: FileSize"},
		{"bad NarHash", strings.Replace(base, "sha256:1hc", "sha256:!!!", 1), "line 3: NarHash"},
		{"bad FileHash", base + "FileHash: sha256:xyz\n", "line 5: FileHash: bad hash"},
		{"relative StorePath", strings.Replace(base, "/nix/store/", "", 1), "line 1: StorePath"},
		{"bad StorePath hash", strings.Replace(base, "7fz1x56l", "7fz1x56e", 1), "line 1: StorePath"},
		{"reference with a directory", base + "References: ../../etc/passwd\n", "line 5: References"},
		{"reference not a store path", base + "References: 7fz1x56lz225dgf7k1h612icsx3nngwn-dep nope\n", "line 5: References"},
		{"bad Deriver", base + "Deriver: /nix/store/x.drv\n", "line 5: Deriver"},
		{"line without colon", base + "garbage\n", "line 5: expecting ':'"},
		{"too large", base + "X: " + strings.Repeat("y", MaxSize) + "\n", "larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.text))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFingerprint_KnownAnswer(t *testing.T) {
	ni := mustParse(t, readFile(t, "top.narinfo"))
	want := "1;/nix/store/j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top;sha256:1392rllypc8m8gk8cis0cibx706q0pysxwq6nq4iilz8k5xvfw14;168;" +
		"/nix/store/7fz1x56lz225dgf7k1h612icsx3nngwn-dep"
	if got := Fingerprint(ni.StorePath, ni.NarHash, ni.NarSize, ni.References); got != want {
		t.Fatalf("fingerprint\n%s\nwant\n%s", got, want)
	}
	// No references: the fingerprint ends with ';'. Several: sorted, deduplicated, comma-separated.
	dep := mustParse(t, readFile(t, "dep.narinfo"))
	if got := Fingerprint(dep.StorePath, dep.NarHash, dep.NarSize, nil); !strings.HasSuffix(got, ";288;") {
		t.Fatalf("no references: %s", got)
	}
	refs := []string{"zz000000000000000000000000000000-b", "7fz1x56lz225dgf7k1h612icsx3nngwn-dep", "zz000000000000000000000000000000-b"}
	got := Fingerprint("/gnu/store/j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top", ni.NarHash, 1, refs)
	if !strings.HasSuffix(got, ";1;/gnu/store/7fz1x56lz225dgf7k1h612icsx3nngwn-dep,/gnu/store/zz000000000000000000000000000000-b") {
		t.Fatalf("several references: %s", got)
	}
	if refs[0] != "zz000000000000000000000000000000-b" {
		t.Fatal("Fingerprint reordered the caller's slice")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(readFile(f, "top.narinfo"))
	f.Add(readFile(f, "dep.narinfo"))
	f.Add(base + "References:\nSig: a:b\nDeriver: unknown-deriver\nCA: x: y\n")
	f.Add(strings.ReplaceAll(base, "\n", "\r\n"))
	f.Fuzz(func(t *testing.T, s string) {
		ni, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		again, err := Parse(strings.NewReader(ni.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", ni.String(), err)
		}
		if !reflect.DeepEqual(ni, again) {
			t.Fatalf("round trip changed %#v into %#v", ni, again)
		}
	})
}

func TestParse_ManyLinesAreLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString(base)
	for i := 0; b.Len() < MaxSize-64; i++ {
		fmt.Fprintf(&b, "Sig: k:%d\n", i)
	}
	start := time.Now()
	ni := mustParse(t, b.String())
	if len(ni.Sigs) < 80000 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d signatures in %v", len(ni.Sigs), time.Since(start))
	}
}
