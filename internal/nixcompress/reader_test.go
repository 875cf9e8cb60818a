package nixcompress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Fixtures in testdata: dep.nar is `nix-store --dump` of a small directory;
// dep.nar.{xz,bz2,gz,zst,br,lz4,lzip,lzma,Z} are the files Nix 2.8 wrote for
// it with `nix copy --to file://…?compression=X` for X = xz, bzip2, gzip,
// zstd, br, lz4, lzip, lzma, compress (Nix names the gzip, lzma and compress
// ones plain .nar). Made with Debian's tools: two-streams.bz2 is two `bzip2`
// streams concatenated; huge-dict.xz is `printf 'hello\n' | xz
// --lzma2=dict=1536MiB`; huge-window.br is `printf 'hello\n' | brotli
// --large_window=30`; legacy.lz4 is `printf 'hello\n' | lz4 -l`; linked.lz4
// is `lz4 -BD -B1024 -BX --content-size` of payload()[:20000] (twenty 1 KiB
// blocks, each linked to the ones before, with block checksums and the
// content size); hello.lz and empty.lz are `lzip` of "hello\n" and of
// nothing; payload40k-b10.Z is ncompress 4.2.4's `compress -b 10` of
// payload()[:40000] (codes of 9 and 10 bits, a full table, one clear code).
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var nixFiles = map[Kind]string{
	None: "dep.nar", XZ: "dep.nar.xz", Bzip2: "dep.nar.bz2", Gzip: "dep.nar.gz", Zstd: "dep.nar.zst",
	Brotli: "dep.nar.br", LZ4: "dep.nar.lz4", Lzip: "dep.nar.lzip", LZMA: "dep.nar.lzma", Compress: "dep.nar.Z",
}

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
			if got, err := Sniff(b[:16]); k != Brotli && (err != nil || got != k) {
				t.Fatalf("Sniff = %q, %v", got, err)
			}
			if got, err := Detect(b[:16], k); err != nil || got != k {
				t.Fatalf("Detect = %q, %v", got, err)
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
	brotliOf := func(p []byte) []byte {
		var buf bytes.Buffer
		w := brotli.NewWriter(&buf)
		_, _ = w.Write(p)
		_ = w.Close()
		return buf.Bytes()
	}
	lz4Of := func(p []byte, opts ...lz4.Option) []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(opts...); err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(p)
		_ = w.Close()
		return buf.Bytes()
	}
	lz4Checked := []lz4.Option{lz4.BlockSizeOption(lz4.Block64Kb), lz4.BlockChecksumOption(true), lz4.ChecksumOption(true), lz4.SizeOption(uint64(len(plain)))}
	lzmaOf := func(p []byte, size int64, eos bool) []byte {
		var buf bytes.Buffer
		w, err := lzma.WriterConfig{Size: size, EOSMarker: eos}.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(p)
		_ = w.Close()
		return buf.Bytes()
	}
	skippable := append([]byte{0x5A, 0x2A, 0x4D, 0x18, 5, 0, 0, 0}, "skip!"...)
	cat := func(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }
	nar := fixture(t, "dep.nar")
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
		{"br", Brotli, brotliOf(plain), plain},
		{"lz4, 64 KiB blocks with checksums and size", LZ4, lz4Of(plain, lz4Checked...), plain},
		{"lz4, concatenated frames", LZ4, cat(lz4Of(plain[:half]), lz4Of(plain[half:], lz4.ChecksumOption(false))), plain},
		{"lz4, skippable frames", LZ4, cat(cat(fixture(t, "dep.nar.lz4"), skippable), fixture(t, "dep.nar.lz4")), cat(nar, nar)},
		{"lz4, linked blocks (lz4 CLI)", LZ4, fixture(t, "linked.lz4"), plain[:20000]},
		{"lzip, concatenated members", Lzip, cat(fixture(t, "dep.nar.lzip"), fixture(t, "dep.nar.lzip")), cat(nar, nar)},
		{"lzip, lzip CLI", Lzip, fixture(t, "hello.lz"), []byte("hello\n")},
		{"lzip, an empty member among others", Lzip, cat(cat(fixture(t, "hello.lz"), fixture(t, "empty.lz")), fixture(t, "hello.lz")), []byte("hello\nhello\n")},
		{"lzma, end marker", LZMA, lzmaOf(plain, -1, true), plain},
		{"lzma, known size", LZMA, lzmaOf(plain, int64(len(plain)), false), plain},
		{"lzma, known size and end marker", LZMA, lzmaOf(plain, int64(len(plain)), true), plain},
		{"compress, clear code (ncompress -b 10)", Compress, fixture(t, "payload40k-b10.Z"), plain[:40000]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Detect(tc.in[:16], tc.kind); err != nil || got != tc.kind {
				t.Fatalf("Detect = %q, %v", got, err)
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
		if k == None || k == Compress {
			continue // no end to check: the NAR validator catches truncation (TestCompress_Truncation)
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
	// Brotli, .lzma and .Z have no checksum: NarHash is all that catches
	// a flipped literal there.
	files := map[Kind][]byte{XZ: fixture(t, "dep.nar.xz"), Bzip2: fixture(t, "dep.nar.bz2"), Gzip: fixture(t, "dep.nar.gz"),
		LZ4: fixture(t, "dep.nar.lz4"), Lzip: fixture(t, "dep.nar.lzip")}
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
	var emptyBrotli, emptyLZ4, emptyLZMA bytes.Buffer
	_ = brotli.NewWriter(&emptyBrotli).Close()
	_ = lz4.NewWriter(&emptyLZ4).Close()
	if w, err := lzma.NewWriter(&emptyLZMA); err == nil {
		_ = w.Close()
	}
	patch := func(name string, at int, b ...byte) []byte {
		p := fixture(t, name)
		copy(p[at:], b)
		return p
	}
	lz4DictFrame := []byte{0x04, 0x22, 0x4D, 0x18, 0x61, 0x40, 1, 0, 0, 0}
	lz4DictFrame = append(lz4DictFrame, byte(xxh32Sum(lz4DictFrame[4:])>>8), 0, 0, 0, 0)
	lz4BigBlock := []byte{0x04, 0x22, 0x4D, 0x18, 0x60, 0x40} // 64 KiB blocks
	lz4BigBlock = append(lz4BigBlock, byte(xxh32Sum(lz4BigBlock[4:])>>8), 0x01, 0x00, 0x01, 0x00)
	lz4BigBlock = append(lz4BigBlock, make([]byte, 65537)...)
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
		{"br, trailing garbage", Brotli, append(fixture(t, "dep.nar.br"), garbage...), nil},
		{"br, a second stream", Brotli, append(fixture(t, "dep.nar.br"), fixture(t, "dep.nar.br")...), nil},
		{"br, empty input", Brotli, nil, io.ErrUnexpectedEOF},
		{"br, stream of nothing", Brotli, emptyBrotli.Bytes(), io.ErrUnexpectedEOF},
		{"br, not brotli (a NAR)", Brotli, fixture(t, "dep.nar"), nil},
		{"br, large window of 1 GiB", Brotli, fixture(t, "huge-window.br"), ErrUnsupported},
		{"lz4, trailing garbage", LZ4, append(fixture(t, "dep.nar.lz4"), garbage...), nil},
		{"lz4, 2 bytes after the frame", LZ4, append(fixture(t, "dep.nar.lz4"), 4, 0x22), io.ErrUnexpectedEOF},
		{"lz4, empty input", LZ4, nil, io.ErrUnexpectedEOF},
		{"lz4, frame of nothing", LZ4, emptyLZ4.Bytes(), io.ErrUnexpectedEOF},
		{"lz4, only a skippable frame", LZ4, []byte{0x50, 0x2A, 0x4D, 0x18, 1, 0, 0, 0, 'x'}, io.ErrUnexpectedEOF},
		{"lz4, legacy format", LZ4, fixture(t, "legacy.lz4"), ErrUnsupported},
		{"lz4, frame needing a dictionary", LZ4, lz4DictFrame, ErrUnsupported},
		{"lz4, descriptor checksum", LZ4, patch("dep.nar.lz4", 6, 0), nil},
		{"lz4, block larger than the frame's maximum", LZ4, lz4BigBlock, nil},
		{"lzip, trailing garbage", Lzip, append(fixture(t, "dep.nar.lzip"), garbage...), nil},
		{"lzip, trailing LZI", Lzip, append(fixture(t, "dep.nar.lzip"), "LZI"...), io.ErrUnexpectedEOF},
		{"lzip, empty input", Lzip, nil, io.ErrUnexpectedEOF},
		{"lzip, member of nothing", Lzip, fixture(t, "empty.lz"), io.ErrUnexpectedEOF},
		{"lzip, trailer's CRC", Lzip, patch("hello.lz", 22, 0), nil},
		{"lzip, trailer's data size", Lzip, patch("hello.lz", 26, 7), nil},
		{"lzip, trailer's member size", Lzip, patch("hello.lz", 34, 43), nil},
		{"lzip, version 0", Lzip, patch("hello.lz", 4, 0), ErrUnsupported},
		{"lzip, dictionary byte out of range", Lzip, patch("hello.lz", 5, 0x0B), nil},
		{"lzip, 128 MiB dictionary", Lzip, patch("hello.lz", 5, 0x1B), ErrUnsupported},
		{"lzma, trailing garbage", LZMA, append(fixture(t, "dep.nar.lzma"), garbage...), nil},
		{"lzma, empty input", LZMA, nil, io.ErrUnexpectedEOF},
		{"lzma, stream of nothing", LZMA, emptyLZMA.Bytes(), io.ErrUnexpectedEOF},
		{"lzma, 1 GiB dictionary", LZMA, patch("dep.nar.lzma", 1, 0, 0, 0, 0x40), ErrUnsupported},
		{"lzma, 4 GiB dictionary", LZMA, patch("dep.nar.lzma", 1, 0xFF, 0xFF, 0xFF, 0xFF), ErrUnsupported},
		{"lzma, declared size too large", LZMA, patch("dep.nar.lzma", 5, 0x21, 1, 0, 0, 0, 0, 0, 0), nil},
		{"lzma, declared size too small", LZMA, patch("dep.nar.lzma", 5, 0x1F, 1, 0, 0, 0, 0, 0, 0), nil},
		{"compress, a byte completing an undefined code", Compress, append(fixture(t, "dep.nar.Z"), 0xFF), nil},
		{"compress, empty input", Compress, nil, io.ErrUnexpectedEOF},
		{"compress, header only", Compress, []byte{0x1F, 0x9D, 0x90}, io.ErrUnexpectedEOF},
		{"compress, 17-bit codes", Compress, patch("dep.nar.Z", 2, 0x91), ErrUnsupported},
		{"compress, 8-bit codes", Compress, patch("dep.nar.Z", 2, 0x88), nil},
		{"compress, reserved flags", Compress, patch("dep.nar.Z", 2, 0xB0), nil},
		{"compress, first code not a byte", Compress, []byte{0x1F, 0x9D, 0x90, 0x00, 0x03}, nil},
		{"unknown kind", Kind("lzop"), fixture(t, "dep.nar"), ErrUnsupported},
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

// The dictionary refusals come before any allocation of it.
func TestNewReader_RefusesBeforeAllocating(t *testing.T) {
	lzmaHuge := fixture(t, "dep.nar.lzma")
	copy(lzmaHuge[1:5], []byte{0, 0, 0, 0x40}) // 1 GiB
	lzipHuge := fixture(t, "hello.lz")
	lzipHuge[5] = 0x1D // 512 MiB
	for _, tc := range []struct {
		kind Kind
		in   []byte
	}{{LZMA, lzmaHuge}, {Lzip, lzipHuge}, {XZ, fixture(t, "huge-dict.xz")}, {Brotli, fixture(t, "huge-window.br")}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decode(tc.kind, tc.in)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%s: err = %v, want ErrUnsupported", tc.kind, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: refusing allocated %d bytes", tc.kind, n)
		}
	}
}

// Later lzip members may allocate dictionaries only in proportion to the
// data decoded: the same member is fine first, refused after a small one.
func TestLzip_DictionaryBudget(t *testing.T) {
	big := fixture(t, "hello.lz")
	big[5] = 0x1A // 64 MiB, the limit
	if got, err := decode(Lzip, big); err != nil || string(got) != "hello\n" {
		t.Fatalf("64 MiB member alone: %q, %v", got, err)
	}
	two := append(fixture(t, "hello.lz"), big...)
	got, err := decode(Lzip, two)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "member 2 declares a 65536 KiB dictionary after 6 bytes") {
		t.Fatalf("64 MiB member after 6 bytes: %q, %v; want ErrUnsupported", got, err)
	}
	if string(got) != "hello\n" {
		t.Fatalf("decoded %q before refusing, want the first member", got)
	}
}

// A .Z stream has no end marker: a cut is accepted exactly when it leaves
// fewer than 8 bits after the last whole code and those bits are zero,
// which is what compress writes after its last code. dep.nar.Z has only
// 9-bit codes (too few codes to fill 9 bits of table), so that set of cuts
// is computed here from the bits alone; every other cut must fail.
func TestCompress_Truncation(t *testing.T) {
	b := fixture(t, "dep.nar.Z")
	nar := fixture(t, "dep.nar")
	data := b[3:]
	if codes := len(data) * 8 / 9; 257+codes > 511 {
		t.Fatalf("fixture has %d codes: widths change, the oracle below does not hold", codes)
	}
	bit := func(i int) byte { return data[i/8] >> (i % 8) & 1 }
	var wantOK, gotOK []int
	for cut := 3; cut < len(b); cut++ {
		bits := (cut - 3) * 8
		rest := bits % 9
		valid := bits >= 9
		for i := bits - rest; i < bits; i++ {
			valid = valid && bit(i) == 0
		}
		if valid {
			wantOK = append(wantOK, cut)
		}
		got, err := decode(Compress, b[:cut])
		if err == nil {
			gotOK = append(gotOK, cut)
			if !bytes.HasPrefix(nar, got) || len(got) == len(nar) {
				t.Fatalf("cut at %d decoded to %d bytes that are not a proper prefix of the NAR", cut, len(got))
			}
		} else if errors.Is(err, io.EOF) {
			t.Fatalf("cut at %d: plain EOF %v", cut, err)
		}
	}
	if fmt.Sprint(gotOK) != fmt.Sprint(wantOK) {
		t.Fatalf("cuts decoding without error: %v\nwant those ending on a code and zero padding: %v", gotOK, wantOK)
	}
	if len(wantOK) > len(b)/3 {
		t.Fatalf("%d of %d cuts undetectable: the oracle is too lax", len(wantOK), len(b))
	}
	// With width changes and a clear, the cuts that fail cannot be listed as
	// simply. With 10-bit codes a cut k bytes into a 10-byte group leaves
	// 8k mod 10 bits: none for 2 of 10 cuts, 2 bits (zero 1 time in 4) for
	// 2 of 10, …, so about 27% of cuts are undetectable; check that at
	// least 60% fail and that none decodes to other bytes.
	z := fixture(t, "payload40k-b10.Z")
	plain := payload()[:40000]
	failed := 0
	for cut := 3; cut < len(z); cut += 7 {
		got, err := decode(Compress, z[:cut])
		if err == nil && !bytes.HasPrefix(plain, got) {
			t.Fatalf("cut at %d decoded to bytes that are not a prefix", cut)
		}
		if err != nil {
			failed++
		}
	}
	if tried := (len(z) - 3 + 6) / 7; failed < tried*6/10 {
		t.Fatalf("only %d of %d cuts of payload40k-b10.Z failed", failed, tried)
	}
}
