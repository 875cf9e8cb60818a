package nar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gonar "github.com/nix-community/go-nix/pkg/nar"
)

// tree is a file-system layout for dumpTree: path → content; a content
// starting with "->" makes a symlink, a path ending in "/" a directory, and
// a path ending in "*" an executable file.
type tree map[string]string

// dumpTree writes t under a temporary directory and returns go-nix's NAR of
// it (byte-identical to `nix-store --dump`).
func dumpTree(tb testing.TB, t tree) []byte {
	tb.Helper()
	root := filepath.Join(tb.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	for p, content := range t {
		full := filepath.Join(root, strings.TrimRight(p, "/*"))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(content[2:], full)
		case strings.HasSuffix(p, "*"):
			err = os.WriteFile(full, []byte(content), 0o755)
		default:
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := gonar.DumpPath(&buf, root); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// mixedTree has every node type, nesting, and names whose byte order
// differs from path order ("a" < "a-b" < "a.b", but "a/x" sorts after "a-b").
var mixedTree = tree{
	"a/x":           strings.Repeat("hello ", 50),
	"a-b":           "sibling",
	"a.b":           "",
	"run.sh*":       "#!/bin/sh\necho hi\n",
	"empty/":        "",
	"link":          "->a/x",
	"dangling":      "->/nix/store/nowhere",
	"sub/deeper/z":  "z",
	"sub/deeper/y*": "",
}

// enc builds NARs token by token, including malformed ones.
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

func narOf(toks ...string) []byte { return new(enc).s(append([]string{magic}, toks...)...).Bytes() }

// dirNAR is a root directory holding one regular file per name, in the order given.
func dirNAR(names ...string) []byte {
	e := new(enc).s(magic, "(", "type", "directory")
	for _, n := range names {
		e.s("entry", "(", "name", n, "node", "(", "type", "regular", "contents", "x", ")", ")")
	}
	return e.s(")").Bytes()
}

// nixDump reads a NAR written by `nix-store --dump` (Nix 2.8): dep.nar is a
// directory with one file, top.nar a text file referring to it.
func nixDump(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func validate(b []byte) error {
	v := NewValidator()
	if _, err := v.Write(b); err != nil {
		return err
	}
	return v.Close()
}

func TestValidator_AcceptsValidNARs(t *testing.T) {
	for _, tc := range []struct {
		name string
		nar  []byte
	}{
		{"nix-store --dump of a directory", nixDump(t, "dep.nar")},
		{"nix-store --dump of a file", nixDump(t, "top.nar")},
		{"regular file", dumpTree(t, tree{"f": "some content"})},
		{"executable", dumpTree(t, tree{"f*": "#!/bin/sh\n"})},
		{"empty file", dumpTree(t, tree{"f": ""})},
		{"symlink", dumpTree(t, tree{"l": "->target"})},
		{"empty directory", dumpTree(t, tree{})},
		{"nested directories", dumpTree(t, tree{"a/b/c/d/e/f": "deep", "a/b/g": "g"})},
		{"mixed tree", dumpTree(t, mixedTree)},
		{"root file", narOf("(", "type", "regular", "contents", "abc", ")")},
		{"root executable", narOf("(", "type", "regular", "executable", "", "contents", "", ")")},
		{"root symlink", narOf("(", "type", "symlink", "target", "/nix/store/x", ")")},
		{"padding-free contents", narOf("(", "type", "regular", "contents", "12345678", ")")},
		{"longest name and target", new(enc).s(magic, "(", "type", "directory", "entry", "(", "name",
			strings.Repeat("n", maxName), "node", "(", "type", "symlink", "target", strings.Repeat("t", maxTarget),
			")", ")", ")").Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunkings := map[string]func(int) int{
				"whole":           func(n int) int { return n },
				"bytewise":        func(int) int { return 1 },
				"random":          func(n int) int { return 1 + rand.IntN(n) },
				"seven at a time": func(n int) int { return min(n, 7) },
			}
			for how, next := range chunkings {
				v := NewValidator()
				for rest := tc.nar; len(rest) > 0; {
					k := next(len(rest))
					if n, err := v.Write(rest[:k]); err != nil || n != k {
						t.Fatalf("%s: Write at %d = %d, %v", how, v.Size(), n, err)
					}
					rest = rest[k:]
				}
				if err := v.Close(); err != nil {
					t.Fatalf("%s: Close: %v", how, err)
				}
				if v.Size() != int64(len(tc.nar)) {
					t.Fatalf("%s: Size = %d, want %d", how, v.Size(), len(tc.nar))
				}
			}
		})
	}
}

func TestValidator_EveryPrefixIsTruncated(t *testing.T) {
	for name, b := range map[string][]byte{
		"mixed tree": dumpTree(t, mixedTree),
		"executable": narOf("(", "type", "regular", "executable", "", "contents", "abc", ")"),
	} {
		for i := range len(b) {
			v := NewValidator()
			if _, err := v.Write(b[:i]); err != nil {
				t.Fatalf("%s: prefix of %d bytes: Write: %v", name, i, err)
			}
			if err := v.Close(); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: prefix of %d of %d bytes: Close = %v, want ErrTruncated", name, i, len(b), err)
			}
		}
	}
}

func TestValidator_TruncationSaysWhere(t *testing.T) {
	file := narOf("(", "type", "regular", "contents", "abc", ")")
	contentsAt := len(narOf("(", "type", "regular", "contents")) // length prefix of "abc"
	for _, tc := range []struct {
		name string
		nar  []byte
		want string
	}{
		{"empty input", nil, `while expecting "nix-archive-1"`},
		{"after the magic", narOf(), `while expecting "("`},
		{"inside a length", file[:contentsAt+3], "inside the length of file contents"},
		{"inside contents", file[:contentsAt+8+2], "inside file contents (2 of 3 bytes)"},
		{"inside padding", file[:contentsAt+8+3+1], "inside the padding of file contents"},
		{"missing final paren", file[:len(file)-16], `while expecting ")"`},
		{"open directory", narOf("(", "type", "directory"), `while expecting "entry" or ")"`},
		{"open entry", narOf("(", "type", "directory", "entry", "(", "name", "a"), `while expecting "node"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.nar)
			if !errors.Is(err, ErrTruncated) || errors.Is(err, ErrFormat) {
				t.Fatalf("got %v, want ErrTruncated only", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestValidator_RejectsMalformed(t *testing.T) {
	badPad := narOf("(", "type", "regular", "contents", "abc", ")")
	padAt := len(narOf("(", "type", "regular", "contents")) + 8 + 3
	badPad[padAt+2] = 1

	deep := new(enc).s(magic)
	for range maxDepth + 1 {
		deep.s("(", "type", "directory", "entry", "(", "name", "d", "node")
	}
	hugeContents := new(enc).s(magic, "(", "type", "regular", "contents")
	hugeContents.Write([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // streamed: only truncation

	for _, tc := range []struct {
		name   string
		nar    []byte
		reason string
		offset int64 // -1: not checked
	}{
		{"bad magic", new(enc).s("nix-archive-2").Bytes(), `expected "nix-archive-1", got "nix-archive-2"`, 0},
		{"unknown token", narOf("[", "type"), `expected "(", got "["`, 24},
		{"unknown node type", narOf("(", "type", "fifo", ")"), `unknown node type "fifo"`, 56},
		{"regular without contents", narOf("(", "type", "regular", ")"), `expected "executable" or "contents", got ")"`, -1},
		{"executable marker not empty", narOf("(", "type", "regular", "executable", "x", "contents", "", ")"), `expected "", got "x"`, -1},
		{"non-zero padding", badPad, "non-zero padding byte 0x01 after file contents", int64(padAt + 2)},
		{"unsorted", dirNAR("c", "b"), `entry "b" after "c": entries not sorted`, -1},
		{"duplicate", dirNAR("a", "a"), `duplicate entry "a"`, -1},
		{"slash", dirNAR("a/b"), `entry name "a/b" contains '/'`, -1},
		{"dot", dirNAR("."), `entry name "."`, -1},
		{"dotdot", dirNAR(".."), `entry name ".."`, -1},
		{"NUL in name", dirNAR("a\x00b"), "contains NUL", -1},
		{"empty name", dirNAR(""), "empty entry name", -1},
		{"long name", dirNAR(strings.Repeat("n", maxName+1)), "entry name of 256 bytes exceeds the limit of 255", -1},
		{"empty target", narOf("(", "type", "symlink", "target", "", ")"), "empty symlink target", -1},
		{"long target", narOf("(", "type", "symlink", "target", strings.Repeat("t", maxTarget+1), ")"), "symlink target of 4096 bytes exceeds the limit of 4095", -1},
		{"NUL in target", narOf("(", "type", "symlink", "target", "a\x00", ")"), "contains NUL", -1},
		{"too deep", deep.Bytes(), "directories nested deeper than 256", -1},
		{"huge token", append(narOf("(", "type"), 0, 0, 0, 0, 0, 0, 0, 1), "token of 72057594037927936 bytes exceeds the limit of 4096", 56},
		{"trailing zero bytes", append(dirNAR("a"), 0, 0, 0, 0, 0, 0, 0, 0), "data after the end of the archive", int64(len(dirNAR("a")))},
		{"second archive", append(dirNAR("a"), dirNAR("a")...), "data after the end of the archive", int64(len(dirNAR("a")))},
		{"entry in a file", narOf("(", "type", "regular", "contents", "x", "entry"), `expected ")", got "entry"`, -1},
		{"entry not closed", narOf("(", "type", "directory", "entry", "(", "name", "a", "node", "(", "type", "regular", "contents", "", ")", "entry"), `expected ")", got "entry"`, -1},
		{"directory token in file", narOf("(", "type", "symlink", "target", "x", "target"), `expected ")", got "target"`, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewValidator()
			_, err := v.Write(tc.nar)
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("Write = %v, want a *FormatError", err)
			}
			if !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", fe.Reason, tc.reason)
			}
			if tc.offset >= 0 && fe.Offset != tc.offset {
				t.Errorf("offset %d, want %d", fe.Offset, tc.offset)
			}
			// The error is sticky, for later writes and for Close.
			if _, again := v.Write(narOf()); again != err {
				t.Errorf("later Write = %v, want the first error", again)
			}
			if cerr := v.Close(); cerr != err {
				t.Errorf("Close = %v, want the first error", cerr)
			}
		})
	}
	// Huge file contents are not a format error: they stream until the body ends.
	v := NewValidator()
	if _, err := v.Write(hugeContents.Bytes()); err != nil {
		t.Fatalf("huge contents: %v", err)
	}
	if err := v.Close(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("huge contents: Close = %v", err)
	}
}

func TestValidator_WriteCountsBytesBeforeTheError(t *testing.T) {
	good := dirNAR("a")
	v := NewValidator()
	n, err := v.Write(append(append([]byte{}, good...), 1, 2, 3))
	if err == nil || n != len(good) || v.Size() != int64(len(good)) {
		t.Fatalf("Write = %d, %v; Size %d; want %d and an error", n, err, v.Size(), len(good))
	}
}

func BenchmarkValidator(b *testing.B) {
	data := dumpTree(b, tree{"big": strings.Repeat("0123456789abcdef", 1<<16), "dir/small": "x"})
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := validate(data); err != nil {
			b.Fatal(err)
		}
	}
}
