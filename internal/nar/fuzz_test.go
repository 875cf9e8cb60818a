package nar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	gonar "github.com/nix-community/go-nix/pkg/nar"
)

// errDotDotName marks a NAR that go-nix's Reader reads but its Writer cannot
// reproduce: the Writer takes an entry name starting with ".." (valid in Nix,
// e.g. "..a") for a step up the tree (writer.go, `nodeName[0:2] == ".."`).
var errDotDotName = errors.New("entry name starting with \"..\": go-nix's Writer mishandles it")

// rewriteWithGoNix reads b with go-nix's Reader to the end and writes every
// header and file back through go-nix's Writer. Reader failures are prefixed
// "reader".
func rewriteWithGoNix(b []byte) ([]byte, error) {
	r, err := gonar.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reader: %w", err)
	}
	defer r.Close()
	var out bytes.Buffer
	w, err := gonar.NewWriter(&out)
	if err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	dotDot := false
	for {
		hdr, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reader: %w", err)
		}
		if strings.Contains(hdr.Path, "/..") {
			dotDot = true
		}
		if dotDot { // keep reading to check the Reader, stop writing
			if _, err := io.Copy(io.Discard, r); err != nil {
				return nil, fmt.Errorf("reader: %w", err)
			}
			continue
		}
		if err := w.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writer: header %s: %w", hdr.Path, err)
		}
		if _, err := io.Copy(w, r); err != nil {
			return nil, fmt.Errorf("copying %s: %w", hdr.Path, err)
		}
	}
	if dotDot {
		return nil, errDotDotName
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	return out.Bytes(), nil
}

func TestValidator_AgreesWithGoNix(t *testing.T) {
	for name, b := range map[string][]byte{
		"mixed tree": dumpTree(t, mixedTree),
		"root file":  narOf("(", "type", "regular", "executable", "", "contents", "abc", ")"),
	} {
		if err := validate(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := rewriteWithGoNix(b)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%s: go-nix round trip: %v (equal %v)", name, err, bytes.Equal(out, b))
		}
	}
	// Names starting with ".." are valid in Nix; go-nix reads them but cannot write them.
	b := dirNAR("...", "..a", "a")
	if err := validate(b); err != nil {
		t.Fatalf("dot-dot names: %v", err)
	}
	if _, err := rewriteWithGoNix(b); !errors.Is(err, errDotDotName) {
		t.Fatalf("dot-dot names: go-nix round trip = %v, want errDotDotName", err)
	}
}

func FuzzValidator(f *testing.F) {
	f.Add(nixDump(f, "dep.nar"))
	f.Add(nixDump(f, "top.nar"))
	f.Add(dumpTree(f, mixedTree))
	f.Add(dumpTree(f, tree{"f*": ""}))
	f.Add(narOf("(", "type", "symlink", "target", "x", ")"))
	f.Add(dirNAR("a", "b", "c"))
	f.Add(narOf("(", "type", "directory", "entry", "(", "name", "a", "node",
		"(", "type", "directory", "entry", "(", "name", "b", "node", "(", "type", "regular", "contents", "", ")", ")", ")", ")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whole and split writes must agree.
		whole := validate(b)
		v := NewValidator()
		half := len(b) / 2
		_, err := v.Write(b[:half])
		if err == nil {
			_, err = v.Write(b[half:])
		}
		if err == nil {
			err = v.Close()
		}
		if (whole == nil) != (err == nil) || (whole != nil && whole.Error() != err.Error()) {
			t.Fatalf("whole write: %v; split write: %v", whole, err)
		}
		if whole != nil {
			if !errors.Is(whole, ErrFormat) && !errors.Is(whole, ErrTruncated) {
				t.Fatalf("error of an unknown kind: %v", whole)
			}
			return
		}
		// Accepted archives read fully with go-nix and re-serialise identically.
		out, err := rewriteWithGoNix(b)
		if errors.Is(err, errDotDotName) {
			return
		}
		if err != nil && strings.HasPrefix(err.Error(), "reader") {
			t.Fatalf("go-nix rejects an accepted NAR: %v", err)
		}
		if err != nil {
			t.Fatalf("go-nix cannot rewrite an accepted NAR: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("go-nix rewrote an accepted NAR differently:\n%q\n%q", b, out)
		}
	})
}
