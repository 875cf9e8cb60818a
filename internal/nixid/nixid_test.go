package nixid

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestParseCacheName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"hello", true}, {"alice+dev", true}, {"a", true}, {"A-b_c", true},
		{"", false}, {"_api", false}, {"-x", false}, {"a/b", false}, {"a b", false},
		{"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij", true},
		{"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijk", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseCacheName(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseCacheName(%q) err=%v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidCacheName) {
				t.Fatalf("error %v is not ErrInvalidCacheName", err)
			}
		})
	}
}

func TestParseStorePathHash(t *testing.T) {
	if _, err := ParseStorePathHash("xcp9cav49dmsjbwdjlmkjxj10gkpx553"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "xcp9cav49dmsjbwdjlmkjxj10gkpx55", "xcp9cav49dmsjbwdjlmkjxj10gkpx55e", "XCP9CAV49DMSJBWDJLMKJXJ10GKPX553"} {
		if _, err := ParseStorePathHash(bad); !errors.Is(err, ErrInvalidStorePathHash) {
			t.Errorf("ParseStorePathHash(%q) = %v", bad, err)
		}
	}
}

func TestSplitStorePath(t *testing.T) {
	dir, h, name, err := SplitStorePath("/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10")
	if err != nil || dir != "/nix/store" || h != "xcp9cav49dmsjbwdjlmkjxj10gkpx553" || name != "hello-2.10" {
		t.Fatalf("got %q %q %q %v", dir, h, name, err)
	}
	for _, bad := range []string{"/nix/store/short", "nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-a", "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-a/b"} {
		if _, _, _, err := SplitStorePath(bad); err == nil {
			t.Errorf("SplitStorePath(%q) accepted", bad)
		}
	}
}

// TestCheckStorePathName follows Nix's checkName (libstore/path.cc): names
// may start with '.' since Nix 2.4, but not be "." or "..", nor have "." or
// ".." as their first dash-separated component.
func TestCheckStorePathName(t *testing.T) {
	long := strings.Repeat("a", MaxStorePathNameLen)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"hello-2.10", true}, {".x", true}, {".dotfile", true}, {"..x", true}, {"...", true}, {".x-1", true},
		{"a?b=c+d_e", true}, {long, true}, {"-x", true}, {"_", true},
		{"", false}, {".", false}, {"..", false}, {".-x", false}, {"..-x", false}, {long + "a", false},
		{"a/b", false}, {"a b", false}, {"é", false}, {"a\x00", false},
	} {
		err := CheckStorePathName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckStorePathName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		_, _, _, err = SplitStorePath("/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-" + tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("SplitStorePath(…-%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestParseNarHash_Forms(t *testing.T) {
	sum := NarHash(sha256.Sum256([]byte("nar")))
	// Nix's narinfo form, Attic's API form, and Nix's SRI form (what
	// `nix path-info --json` prints and older garret clients sent).
	for _, s := range []string{sum.String(), sum.Hex(), "sha256-" + base64.StdEncoding.EncodeToString(sum[:])} {
		got, err := ParseNarHash(s)
		if err != nil || got != sum {
			t.Fatalf("ParseNarHash(%q) = %x, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "sha1:abcd", "sha256:zz", "md5-AAAA"} {
		if _, err := ParseNarHash(bad); !errors.Is(err, ErrInvalidNarHash) {
			t.Errorf("ParseNarHash(%q) = %v", bad, err)
		}
	}
}

// The grammars the hand-written checks implement.
var (
	cacheNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$`)
	pathHashRE  = regexp.MustCompile(`^[0123456789abcdfghijklmnpqrsvwxyz]{32}$`)
)

// TestChecks_AgreeWithTheGrammar: the byte-loop checks accept exactly what
// the regular expressions do, over every byte in every position of names and
// hashes of the lengths around the bounds, and over random strings.
func TestChecks_AgreeWithTheGrammar(t *testing.T) {
	check := func(s string) {
		if got, want := validCacheName(s), cacheNameRE.MatchString(s); got != want {
			t.Fatalf("cache name %q: %v, grammar %v", s, got, want)
		}
		if got, want := validPathHash(s), pathHashRE.MatchString(s); got != want {
			t.Fatalf("path hash %q: %v, grammar %v", s, got, want)
		}
	}
	for _, n := range []int{0, 1, 2, 31, 32, 33, 49, 50, 51} {
		for pos := range max(n, 1) {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				if n > 0 {
					b[pos] = byte(c)
				}
				check(string(b))
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "0123456789abcdefghijklmnopqrstuvwxyzABCZ-_+.é/\x00 "
	for range 200000 {
		b := make([]byte, rng.IntN(54))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
}

func FuzzChecks(f *testing.F) {
	f.Add("abc")
	f.Add(strings.Repeat("0", 32))
	f.Fuzz(func(t *testing.T, s string) {
		if validCacheName(s) != cacheNameRE.MatchString(s) || validPathHash(s) != pathHashRE.MatchString(s) {
			t.Fatalf("%q: the checks and the grammar disagree", s)
		}
	})
}
