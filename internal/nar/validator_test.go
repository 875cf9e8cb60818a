package nar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	gonar "github.com/nix-community/go-nix/pkg/nar"
)

// dumpTree builds a NAR of a small tree with go-nix (byte-identical to nix-store --dump).
func dumpTree(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "sub", "deeper"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a.txt"), bytes.Repeat([]byte("hello "), 1000), 0o644))
	must(os.WriteFile(filepath.Join(root, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o644))
	must(os.WriteFile(filepath.Join(root, "sub", "deeper", "x"), []byte("x"), 0o644))
	must(os.Symlink("a.txt", filepath.Join(root, "link")))
	var buf bytes.Buffer
	must(gonar.DumpPath(&buf, root))
	return buf.Bytes()
}

type enc struct{ bytes.Buffer }

func (e *enc) s(toks ...string) *enc {
	for _, s := range toks {
		var l [8]byte
		binary.LittleEndian.PutUint64(l[:], uint64(len(s)))
		e.Write(l[:])
		e.WriteString(s)
		e.Write(make([]byte, (8-len(s)%8)%8))
	}
	return e
}

func validate(b []byte) error {
	v := NewValidator()
	if _, err := v.Write(b); err != nil {
		return err
	}
	return v.Close()
}

func TestValidator_AcceptsNixNARs(t *testing.T) {
	tree := dumpTree(t)
	file := new(enc).s("nix-archive-1", "(", "type", "regular", "contents", "", ")").Bytes()
	link := new(enc).s("nix-archive-1", "(", "type", "symlink", "target", "/nix/store/x", ")").Bytes()
	exe := new(enc).s("nix-archive-1", "(", "type", "regular", "executable", "", "contents", "abc", ")").Bytes()
	emptyDir := new(enc).s("nix-archive-1", "(", "type", "directory", ")").Bytes()
	for name, b := range map[string][]byte{"tree": tree, "empty file": file, "symlink": link, "executable": exe, "empty dir": emptyDir} {
		if err := validate(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Byte-at-a-time writes give the same verdict.
		v := NewValidator()
		for i := range b {
			if _, err := v.Write(b[i : i+1]); err != nil {
				t.Fatalf("%s: byte %d: %v", name, i, err)
			}
		}
		if err := v.Close(); err != nil || v.Size() != int64(len(b)) {
			t.Errorf("%s bytewise: %v size %d", name, err, v.Size())
		}
	}
}

func TestValidator_EveryPrefixIsTruncated(t *testing.T) {
	tree := dumpTree(t)
	for i := 0; i < len(tree); i++ {
		err := validate(tree[:i])
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix %d of %d accepted: %v", i, len(tree), err)
		}
	}
}

func TestValidator_RejectsMalformed(t *testing.T) {
	dir := func(names ...string) []byte {
		e := new(enc).s("nix-archive-1", "(", "type", "directory")
		for _, n := range names {
			e.s("entry", "(", "name", n, "node", "(", "type", "regular", "contents", "x", ")", ")")
		}
		return e.s(")").Bytes()
	}
	badPad := new(enc).s("nix-archive-1", "(", "type", "regular", "contents", "abc", ")").Bytes()
	badPad[8+16+8+8+8+8+8+8+8+8+8+3] = 1 // a padding byte of "abc"
	deep := new(enc).s("nix-archive-1")
	for range maxDepth + 1 {
		deep.s("(", "type", "directory", "entry", "(", "name", "d", "node")
	}
	huge := new(enc).s("nix-archive-1", "(", "type")
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], 1<<40)
	huge.Write(l[:])
	for name, b := range map[string][]byte{
		"bad magic":        new(enc).s("nix-archive-2", "(", "type", "regular", "contents", "", ")").Bytes(),
		"unknown type":     new(enc).s("nix-archive-1", "(", "type", "fifo", ")").Bytes(),
		"unsorted":         dir("b", "a"),
		"duplicate":        dir("a", "a"),
		"slash":            dir("a/b"),
		"dot":              dir("."),
		"dotdot":           dir(".."),
		"nul":              dir("a\x00"),
		"empty name":       dir(""),
		"long name":        dir(string(bytes.Repeat([]byte("n"), 256))),
		"empty target":     new(enc).s("nix-archive-1", "(", "type", "symlink", "target", "", ")").Bytes(),
		"non-zero padding": badPad,
		"trailing bytes":   append(dir("a"), 0, 0, 0, 0, 0, 0, 0, 0),
		"too deep":         deep.Bytes(),
		"huge token":       huge.Bytes(),
		"missing close":    new(enc).s("nix-archive-1", "(", "type", "regular", "contents", "x", "x").Bytes(),
	} {
		if err := validate(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func FuzzValidator(f *testing.F) {
	f.Add(dumpTree(f))
	f.Add(new(enc).s("nix-archive-1", "(", "type", "symlink", "target", "x", ")").Bytes())
	f.Add(new(enc).s("nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node", "(", "type", "regular", "contents", "x", ")", ")", ")").Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		if validate(b) != nil {
			return
		}
		// Accepted archives must read fully with go-nix and re-serialise identically.
		r, err := gonar.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("go-nix rejects an accepted NAR: %v", err)
		}
		defer r.Close()
		var out bytes.Buffer
		w, err := gonar.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		for {
			hdr, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("go-nix reading an accepted NAR: %v", err)
			}
			if err := w.WriteHeader(hdr); err != nil {
				t.Fatalf("go-nix writer: %v", err)
			}
			if _, err := io.Copy(w, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("re-serialised NAR differs")
		}
	})
}
