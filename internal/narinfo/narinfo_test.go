package narinfo

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
)

// nixWritten is a narinfo as Nix 2.8 writes it for a file:// cache.
const nixWritten = `StorePath: /nix/store/60cay3f30zaprsvgajp3x2v1s50l6bbm-top-1
URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.zst
Compression: zstd
FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
FileSize: 236
NarHash: sha256:0f9s0bq5l6dbnkwmbdgcgpnl6kn51frkdk4i9byrr9f7r6kc80xn
NarSize: 408
References: r6snrlic8ws8x430rnlxha2f58q6yvs0-dep-1
Deriver: i38x05467piw08f496qf24286lfh348v-top-1.drv
Sig: test-1:Hr5M7i3HUJE6OFRpqBvYKWhJ5s+r8/0zRfU7R2w8/0fF0Im5N8HsT7v3pYEfYh1ACi+9Fe0n9b0UzqOUe+A8Cg==
`

func TestParse_RoundTripsNixOutput(t *testing.T) {
	ni, err := Parse(strings.NewReader(nixWritten))
	if err != nil {
		t.Fatal(err)
	}
	if got := ni.String(); got != nixWritten {
		t.Fatalf("re-rendered differs:\n%s\nwant:\n%s", got, nixWritten)
	}
}

func TestParse_Lenient(t *testing.T) {
	base := "StorePath: /nix/store/r6snrlic8ws8x430rnlxha2f58q6yvs0-dep-1\nURL: nar/x.nar\nNarHash: sha256:0f9s0bq5l6dbnkwmbdgcgpnl6kn51frkdk4i9byrr9f7r6kc80xn\nNarSize: 8\n"
	for name, tc := range map[string]struct {
		text string
		ok   bool
	}{
		"minimal":                {base, true},
		"unknown key":            {base + "Foo: bar\n", true},
		"References no space":    {base + "References:\n", true},
		"value with colon-space": {base + "CA: fixed:r:sha256: x\n", true},
		"line without colon":     {base + "garbage\n", true},
		"missing StorePath":      {strings.Replace(base, "StorePath", "X", 1), false},
		"missing NarSize":        {strings.Replace(base, "NarSize: 8\n", "", 1), false},
		"bad NarSize":            {strings.Replace(base, "NarSize: 8", "NarSize: -8", 1), false},
		"bad NarHash":            {strings.Replace(base, "sha256:0f9", "sha256:!!!", 1), false},
		"relative StorePath":     {strings.Replace(base, "/nix/store/", "", 1), false},
		"too large":              {base + "X: " + strings.Repeat("y", MaxSize) + "\n", false},
	} {
		ni, err := Parse(strings.NewReader(tc.text))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", name, err, tc.ok)
		}
		if err == nil && ni.Compression != "bzip2" {
			t.Errorf("%s: default compression %q", name, ni.Compression)
		}
	}
}

func TestFingerprint_KnownAnswer(t *testing.T) {
	ni, err := Parse(strings.NewReader(nixWritten))
	if err != nil {
		t.Fatal(err)
	}
	want := "1;/nix/store/60cay3f30zaprsvgajp3x2v1s50l6bbm-top-1;sha256:0f9s0bq5l6dbnkwmbdgcgpnl6kn51frkdk4i9byrr9f7r6kc80xn;408;/nix/store/r6snrlic8ws8x430rnlxha2f58q6yvs0-dep-1"
	if got := Fingerprint(ni.StorePath, ni.NarHash, ni.NarSize, ni.References); got != want {
		t.Fatalf("fingerprint\n%s\nwant\n%s", got, want)
	}
}

func TestSign_VerifiesWithGoNix(t *testing.T) {
	text, err := GenerateKeypair("mycache")
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ParseSecretKey(text)
	if err != nil {
		t.Fatal(err)
	}
	if sk.Name() != "mycache" || !strings.HasPrefix(sk.PublicKey(), "mycache:") {
		t.Fatalf("name %q public %q", sk.Name(), sk.PublicKey())
	}
	fp := "1;/nix/store/60cay3f30zaprsvgajp3x2v1s50l6bbm-top-1;sha256:0f9s0bq5l6dbnkwmbdgcgpnl6kn51frkdk4i9byrr9f7r6kc80xn;408;"
	sig := sk.Sign(fp)
	pk, _ := signature.ParsePublicKey(sk.PublicKey())
	s, _ := signature.ParseSignature(sig)
	if !signature.VerifyFirst(fp, []signature.Signature{s}, []signature.PublicKey{pk}) || !Verify(sk.PublicKey(), fp, sig) {
		t.Fatal("signature does not verify")
	}
	other, _ := GenerateKeypair("mycache")
	osk, _ := ParseSecretKey(other)
	if Verify(osk.PublicKey(), fp, sig) || Verify(sk.PublicKey(), fp+"x", sig) {
		t.Fatal("signature verifies with the wrong key or fingerprint")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(nixWritten)
	f.Add("StorePath: /nix/store/r6snrlic8ws8x430rnlxha2f58q6yvs0-dep-1\nURL: u\nNarHash: sha256:0f9s0bq5l6dbnkwmbdgcgpnl6kn51frkdk4i9byrr9f7r6kc80xn\nNarSize: 1\n")
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
