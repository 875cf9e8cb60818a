package nixcompress

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Fixtures in testdata: dep.nar is `nix-store --dump` of a small directory;
// dep.nar.{xz,bz2,gz,zst} are the files Nix 2.8 wrote for it with `nix copy
// --to file://…?compression=X` (the gzip one is named plain .nar by Nix).
// two-streams.bz2 is two `bzip2` CLI streams concatenated; huge-dict.xz is
// `printf 'hello\n' | xz --lzma2=dict=1536MiB`.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var nixFiles = map[Kind]string{None: "dep.nar", XZ: "dep.nar.xz", Bzip2: "dep.nar.bz2", Gzip: "dep.nar.gz", Zstd: "dep.nar.zst"}

func decode(k Kind, b []byte) ([]byte, error) {
	r, err := NewReader(k, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestNewReader_DecodesNixOutput(t *testing.T) {
	want := fixture(t, "dep.nar")
	for k, name := range nixFiles {
		t.Run(string(k), func(t *testing.T) {
			b := fixture(t, name)
			if got, err := Sniff(b[:16]); err != nil || got != k {
				t.Fatalf("Sniff = %q, %v", got, err)
			}
			got, err := decode(k, b)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("decoded %d bytes, %v; want dep.nar", len(got), err)
			}
		})
	}
}

// payload is 256 KiB of compressible but not trivial data.
func payload() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 256<<10; i++ {
		fmt.Fprintf(&b, "line %d of the payload, %x\n", i, i*i*2654435761)
	}
	return b.Bytes()
}

func TestNewReader_RoundTrip(t *testing.T) {
	plain := payload()
	half := len(plain) / 2
	zstdOf := func(p []byte) []byte {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
		return e.EncodeAll(p, nil)
	}
	xzOf := func(p []byte) []byte {
		var buf bytes.Buffer
		w, _ := xz.NewWriter(&buf)
		_, _ = w.Write(p)
		_ = w.Close()
		return buf.Bytes()
	}
	gzipOf := func(p []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(p)
		_ = w.Close()
		return buf.Bytes()
	}
	cat := func(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }
	for _, tc := range []struct {
		name string
		kind Kind
		in   []byte
		want []byte
	}{
		{"none", None, append(bytes.Clone(narMagic), plain...), append(bytes.Clone(narMagic), plain...)},
		{"zstd", Zstd, zstdOf(plain), plain},
		{"zstd, concatenated frames (Nix 2.35 parallel)", Zstd, cat(zstdOf(plain[:half]), zstdOf(plain[half:])), plain},
		{"xz", XZ, xzOf(plain), plain},
		{"xz, concatenated streams", XZ, cat(xzOf(plain[:half]), xzOf(plain[half:])), plain},
		{"xz, stream padding", XZ, cat(xzOf(plain), make([]byte, 8)), plain},
		{"gzip", Gzip, gzipOf(plain), plain},
		{"gzip, several members", Gzip, cat(gzipOf(plain[:half]), gzipOf(plain[half:])), plain},
		{"bzip2, concatenated streams", Bzip2, fixture(t, "two-streams.bz2"), []byte("first stream\nsecond stream\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Sniff(tc.in[:16]); err != nil || got != tc.kind {
				t.Fatalf("Sniff = %q, %v", got, err)
			}
			got, err := decode(tc.kind, tc.in)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("decoded %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}
}

func TestNewReader_EveryTruncationFails(t *testing.T) {
	for k, name := range nixFiles {
		if k == None {
			continue // passthrough: the NAR validator catches truncation
		}
		b := fixture(t, name)
		for i := range len(b) {
			if got, err := decode(k, b[:i]); err == nil {
				t.Fatalf("%s: prefix of %d/%d bytes decoded without error to %d bytes", k, i, len(b), len(got))
			}
		}
	}
}

func TestNewReader_CorruptionFailsOrIsHarmless(t *testing.T) {
	want := fixture(t, "dep.nar")
	files := map[Kind][]byte{XZ: fixture(t, "dep.nar.xz"), Bzip2: fixture(t, "dep.nar.bz2"), Gzip: fixture(t, "dep.nar.gz")}
	// Nix's zstd frames carry no checksum, so corrupt literals would decode
	// silently (only NarHash catches that); check a frame with one.
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	files[Zstd] = e.EncodeAll(want, nil)
	for k, b := range files {
		for i := range b {
			bad := bytes.Clone(b)
			bad[i] ^= 0x55
			if got, err := decode(k, bad); err == nil && !bytes.Equal(got, want) {
				t.Fatalf("%s: byte %d flipped: decoded %d different bytes without error", k, i, len(got))
			}
		}
	}
}

func TestNewReader_Rejects(t *testing.T) {
	garbage := []byte("trailing garbage")
	emptyZstd, _ := zstd.NewWriter(nil)
	for _, tc := range []struct {
		name string
		kind Kind
		in   []byte
		want error
	}{
		{"zstd, trailing garbage", Zstd, append(fixture(t, "dep.nar.zst"), garbage...), nil},
		{"xz, trailing garbage", XZ, append(fixture(t, "dep.nar.xz"), garbage...), nil},
		{"xz, padding not a multiple of 4", XZ, append(fixture(t, "dep.nar.xz"), 0, 0), nil},
		{"xz, cut after the block", XZ, fixture(t, "dep.nar.xz")[:144], io.ErrUnexpectedEOF},
		{"gzip, trailing garbage", Gzip, append(fixture(t, "dep.nar.gz"), garbage...), nil},
		{"bzip2, trailing garbage", Bzip2, append(fixture(t, "dep.nar.bz2"), garbage...), nil},
		{"zstd, empty input", Zstd, nil, io.ErrUnexpectedEOF},
		{"zstd, frame of nothing", Zstd, emptyZstd.EncodeAll(nil, nil), io.ErrUnexpectedEOF},
		{"xz, empty input", XZ, nil, io.ErrUnexpectedEOF},
		{"gzip, empty input", Gzip, nil, io.ErrUnexpectedEOF},
		{"bzip2, empty input", Bzip2, nil, nil},
		{"xz, 1.5 GiB dictionary", XZ, fixture(t, "huge-dict.xz"), ErrUnsupported},
		{"unknown kind", Kind("br"), fixture(t, "dep.nar"), ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.kind, tc.in)
			if err == nil {
				t.Fatalf("decoded %d bytes without error", len(got))
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if errors.Is(err, io.EOF) {
				t.Fatalf("err = %v: a plain EOF reads as success", err)
			}
		})
	}
}

func TestXZFirstDict_Sizes(t *testing.T) {
	for name, want := range map[string]uint64{"dep.nar.xz": 8 << 20, "huge-dict.xz": 1536 << 20} {
		if got, ok := xzFirstDict(bufio.NewReader(bytes.NewReader(fixture(t, name)))); !ok || got != want {
			t.Errorf("%s: dictionary %d, %v; want %d", name, got, ok, want)
		}
	}
}
