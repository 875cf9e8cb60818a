package narinfo

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func validInfo() NarInfo {
	return NarInfo{
		StorePath:  "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12",
		URL:        "nar/x.nar.xz",
		References: []string{"7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12", "0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-glibc-2.38"},
		Deriver:    "0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-hello-2.12.drv",
		System:     "x86_64-linux",
		CA:         "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		Sigs:       []string{"cache.nixos.org-1:" + base64.StdEncoding.EncodeToString(make([]byte, 64))},
	}
}

func TestValidate_AcceptsWhatNixWrites(t *testing.T) {
	n := validInfo()
	if err := n.Validate("/nix/store"); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{
		"text:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		"fixed:sha256:" + strings.Repeat("ab", 32),
		"fixed:git:sha1:" + strings.Repeat("0", 40),
		"fixed:r:sha512:" + base64.StdEncoding.EncodeToString(make([]byte, 64)),
	} {
		if err := ValidateCA(ca); err != nil {
			t.Errorf("%s: %v", ca, err)
		}
	}
	for _, s := range []string{"aarch64-darwin", "builtin", "x86_64-unknown-linux-gnu", "i686-linux"} {
		if err := ValidateSystem(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if err := ValidateDeriver(UnknownDeriver); err != nil {
		t.Error(err)
	}
}

func TestValidate_RefusesInjection(t *testing.T) {
	for name, mutate := range map[string]func(*NarInfo){
		"system newline":     func(n *NarInfo) { n.System = "x86_64-linux\nURL: https://evil.example/nar/x.nar\nCompression: none" },
		"system shape":       func(n *NarInfo) { n.System = "x86 64 linux" },
		"deriver newline":    func(n *NarInfo) { n.Deriver = "0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a.drv\nURL: x" },
		"deriver not drv":    func(n *NarInfo) { n.Deriver = "0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a" },
		"deriver full path":  func(n *NarInfo) { n.Deriver = "/nix/store/0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a.drv" },
		"ca free text":       func(n *NarInfo) { n.CA = "anything" },
		"ca carriage return": func(n *NarInfo) { n.CA = "text:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\r" },
		"ca short hash":      func(n *NarInfo) { n.CA = "fixed:sha256:abcd" },
		"ca unknown algo":    func(n *NarInfo) { n.CA = "fixed:sha3:" + strings.Repeat("ab", 32) },
		"sig newline": func(n *NarInfo) {
			n.Sigs = []string{"k:" + base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\nURL: x"}
		},
		"sig short":       func(n *NarInfo) { n.Sigs = []string{"k:AAAA"} },
		"sig no name":     func(n *NarInfo) { n.Sigs = []string{":" + base64.StdEncoding.EncodeToString(make([]byte, 64))} },
		"reference path":  func(n *NarInfo) { n.References = []string{"/nix/store/0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a"} },
		"reference tab":   func(n *NarInfo) { n.References = []string{"0zn4q9nqkl8w8qj3vns3rypdyssgqxmd-a\tb"} },
		"other store dir": func(n *NarInfo) { n.StorePath = "/gnu/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12" },
		"url escape":      func(n *NarInfo) { n.URL = "nar/x\x1b[2J.nar" },
	} {
		n := validInfo()
		mutate(&n)
		err := n.Validate("/nix/store")
		var fe *FieldError
		if !errors.Is(err, ErrField) || !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FieldError", name, err)
		}
	}
}

func TestRender_RefusesControlCharacters(t *testing.T) {
	n := validInfo()
	if _, err := n.Render(); err != nil {
		t.Fatal(err)
	}
	n.System = "x86_64-linux\nURL: https://evil.example/nar/x.nar"
	if text, err := n.Render(); err == nil || strings.Contains(text, "evil") {
		t.Fatalf("rendered %q, %v", text, err)
	}
	n = validInfo()
	n.References = []string{"a b"}
	if _, err := n.Render(); err == nil {
		t.Fatal("a reference with a space rendered")
	}
}
