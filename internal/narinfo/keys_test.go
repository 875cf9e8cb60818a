package narinfo

import (
	"errors"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
)

func TestSign_MatchesNix(t *testing.T) {
	// testdata/garret-test-1.sec is a throwaway key from `nix key
	// generate-secret`; Nix signed the testdata narinfos with it.
	sk, err := ParseSecretKey(readFile(t, "garret-test-1.sec"))
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(readFile(t, "garret-test-1.pub"))
	if sk.Name() != "garret-test-1" || sk.PublicKey() != pub {
		t.Fatalf("name %q public %q, want garret-test-1 and %q", sk.Name(), sk.PublicKey(), pub)
	}
	for _, name := range []string{"top.narinfo", "dep.narinfo"} {
		ni := mustParse(t, readFile(t, name))
		fp := Fingerprint(ni.StorePath, ni.NarHash, ni.NarSize, ni.References)
		if got := sk.Sign(fp); got != ni.Sigs[0] {
			t.Errorf("%s: signature %s, Nix wrote %s", name, got, ni.Sigs[0])
		}
		if !Verify(pub, fp, ni.Sigs[0]) {
			t.Errorf("%s: Nix's signature does not verify", name)
		}
	}
}

func TestSign_VerifiesWithGoNix(t *testing.T) {
	newKey := func(name string) SecretKey {
		text, err := GenerateKeypair(name)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := ParseSecretKey(text)
		if err != nil {
			t.Fatal(err)
		}
		return sk
	}
	sk, other := newKey("mycache-1"), newKey("mycache-1")
	if sk.Name() != "mycache-1" || !strings.HasPrefix(sk.PublicKey(), "mycache-1:") {
		t.Fatalf("name %q public %q", sk.Name(), sk.PublicKey())
	}
	fp := Fingerprint("/nix/store/j7hp7r82zsrdf2n5g6plih7g8lv26qqc-top", mustParse(t, base).NarHash, 168, nil)
	sig := sk.Sign(fp)

	goNix := func(pub, fp string) bool {
		pk, err := signature.ParsePublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		s, err := signature.ParseSignature(sig)
		if err != nil {
			t.Fatal(err)
		}
		return signature.VerifyFirst(fp, []signature.Signature{s}, []signature.PublicKey{pk})
	}
	for _, tc := range []struct {
		name    string
		pub, fp string
		want    bool
	}{
		{"own key", sk.PublicKey(), fp, true},
		{"other key, same name", other.PublicKey(), fp, false},
		{"other fingerprint", sk.PublicKey(), fp + "x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := goNix(tc.pub, tc.fp); got != tc.want {
				t.Errorf("go-nix VerifyFirst = %v, want %v", got, tc.want)
			}
			if got := Verify(tc.pub, tc.fp, sig); got != tc.want {
				t.Errorf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
	renamed := "othername:" + strings.SplitN(sk.PublicKey(), ":", 2)[1]
	if Verify(renamed, fp, sig) || Verify("garbage", fp, sig) || Verify(sk.PublicKey(), fp, "garbage") {
		t.Error("Verify accepts a renamed key or malformed input")
	}
}

func TestParseSecretKey_Rejects(t *testing.T) {
	good := strings.TrimSpace(readFile(t, "garret-test-1.sec"))
	name, b64, _ := strings.Cut(good, ":")
	flipped := []byte(b64)
	flipped[60] = map[bool]byte{true: 'B', false: 'A'}[b64[60] == 'A'] // a byte of the public half
	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"no name", ":" + b64},
		{"no colon", b64},
		{"public key", readFile(t, "garret-test-1.pub")},
		{"not base64", name + ":!!!"},
		{"public half does not match", name + ":" + string(flipped)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSecretKey(tc.key); !errors.Is(err, ErrBadKey) {
				t.Fatalf("err = %v, want ErrBadKey", err)
			}
		})
	}
	for _, bad := range []string{"", "a:b", "a b"} {
		if _, err := GenerateKeypair(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("GenerateKeypair(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}
