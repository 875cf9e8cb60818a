package nixcompress

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// xzBlock is one block of a hand-made xz stream: dictByte is the LZMA2
// filter's dictionary size byte (22 is 8 MiB, 36 is 1 GiB, 40 is 4 GiB),
// data is stored in uncompressed LZMA2 chunks of at most 64 KiB.
type xzBlock struct {
	dictByte byte
	data     []byte
}

// xzStream builds a valid xz stream (CRC32 checks) of blocks, byte by byte
// from xz-file-format 1.2.1, so that any block's header can declare
// anything.
func xzStream(blocks ...xzBlock) []byte {
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	varint := func(b []byte, v uint64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	pad4 := func(b []byte, n int) []byte { return append(b, make([]byte, (4-n%4)%4)...) }
	flags := []byte{0, 1} // CRC32 checks
	out := append([]byte("\xfd7zXZ\x00"), flags...)
	out = append(out, le32(crc32.ChecksumIEEE(flags))...)
	var index []byte
	for _, b := range blocks {
		hdr := []byte{2, 0, 0x21, 1, b.dictByte, 0, 0, 0} // 12 bytes with the CRC
		hdr = append(hdr, le32(crc32.ChecksumIEEE(hdr))...)
		var data []byte
		for i, ctl := 0, byte(1); i < len(b.data); i, ctl = i+64<<10, 2 { // 1: dictionary reset
			part := b.data[i:min(i+64<<10, len(b.data))]
			data = append(data, ctl, byte((len(part)-1)>>8), byte(len(part)-1))
			data = append(data, part...)
		}
		data = append(data, 0)
		out = append(out, hdr...)
		out = append(out, data...)
		out = pad4(out, len(data))
		out = append(out, le32(crc32.ChecksumIEEE(b.data))...)
		index = varint(index, uint64(len(hdr)+len(data)+4))
		index = varint(index, uint64(len(b.data)))
	}
	idx := varint([]byte{0}, uint64(len(blocks)))
	idx = append(idx, index...)
	idx = pad4(idx, len(idx))
	idx = append(idx, le32(crc32.ChecksumIEEE(idx))...)
	out = append(out, idx...)
	footer := append(le32(uint32(len(idx)/4-1)), flags...)
	out = append(out, le32(crc32.ChecksumIEEE(footer))...)
	out = append(out, footer...)
	return append(out, 'Y', 'Z')
}

// The scanner follows the framing the decoder reads: hand-made streams of
// several blocks and streams decode, and so do Nix's and xz's own files.
func TestXZScan_FollowsValidFiles(t *testing.T) {
	one := xzStream(xzBlock{22, []byte("hello ")}, xzBlock{22, []byte("world\n")})
	two := append(append([]byte{}, one...), make([]byte, 4)...) // stream padding
	two = append(two, xzStream(xzBlock{20, []byte("again\n")})...)
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"two blocks":  {one, "hello world\n"},
		"two streams": {two, "hello world\nagain\n"},
		"nix":         {fixture(t, "dep.nar.xz"), string(fixture(t, "dep.nar"))},
	} {
		got, err := decode(XZ, tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

// A dictionary declared by a later block, or by a block of a later stream,
// is refused before the decoder allocates it, like one in the first block.
func TestXZ_EveryBlockAndStreamIsChecked(t *testing.T) {
	const gib = 36                                    // dictionary size byte of 1 GiB
	first := xzStream(xzBlock{12, []byte("hello\n")}) // 256 KiB
	for name, in := range map[string][]byte{
		"first block":   xzStream(xzBlock{gib, []byte("hello\n")}),
		"second block":  xzStream(xzBlock{12, bytes.Repeat([]byte("hello\n"), 100)}, xzBlock{gib, []byte("hello\n")}),
		"second stream": append(append([]byte{}, first...), xzStream(xzBlock{gib, []byte("hello\n")})...),
		"4 GiB":         append(append([]byte{}, first...), xzStream(xzBlock{40, []byte("hello\n")})...),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decode(XZ, in)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: refusing allocated %d bytes", name, n)
		}
	}
}

// Blocks after the first may declare dictionaries only in proportion to the
// data before them (64 bytes per byte), as lzip members may.
func TestXZ_DictionaryAllowance(t *testing.T) {
	const max = 28 // 64 MiB
	ok := xzStream(xzBlock{max, []byte("hello\n")})
	if got, err := decode(XZ, ok); err != nil || string(got) != "hello\n" {
		t.Fatalf("64 MiB block alone: %q, %v", got, err)
	}
	_, err := decode(XZ, xzStream(xzBlock{22, []byte("hello\n")}, xzBlock{max, []byte("hello\n")}))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "block 2 declares a 65536 KiB dictionary after 6 bytes") {
		t.Fatalf("64 MiB block after 6 bytes: %v; want ErrUnsupported", err)
	}
	big := make([]byte, 60000)
	var blocks []xzBlock
	for range 20 { // 1.2 MB decoded: 77 MB more allowed, each block takes 256 KiB
		blocks = append(blocks, xzBlock{12, big})
	}
	if got, err := decode(XZ, xzStream(blocks...)); err != nil || len(got) != 20*len(big) {
		t.Fatalf("20 blocks of 256 KiB dictionaries: %d bytes, %v", len(got), err)
	}
	// xz -9 --block-size=1MiB: 64 MiB dictionaries for 1 MiB blocks.
	mib := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	if got, err := decode(XZ, xzStream(xzBlock{max, mib}, xzBlock{max, mib})); err != nil || len(got) != 2<<20 {
		t.Fatalf("1 MiB blocks of 64 MiB dictionaries: %d bytes, %v", len(got), err)
	}
}

// budgetReader is a decoder of k's fixture that has read its first byte
// (an xz decoder reserves when it reads a block header).
func budgetReader(t *testing.T, b *Budget, k Kind) io.ReadCloser {
	t.Helper()
	r, err := NewBudgetReader(context.Background(), k, bytes.NewReader(fixture(t, nixFiles[k])), b)
	if err == nil {
		_, err = r.Read(make([]byte, 1))
	}
	if err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return r
}

// Every decoder reserves what its stream declares and gives it back on
// Close; decoding within a budget gives the same bytes.
func TestBudget_ReservesAndReleases(t *testing.T) {
	want := fixture(t, "dep.nar")
	for k := range nixFiles {
		if k == None {
			continue
		}
		b := NewBudget(256<<20, 0)
		r := budgetReader(t, b, k)
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, want[1:]) {
			t.Errorf("%s: %d bytes, %v", k, len(got), err)
		}
		if b.InUse() == 0 {
			t.Errorf("%s: decoding reserved nothing", k)
		}
		r.Close()
		if n := b.InUse(); n != 0 {
			t.Errorf("%s: %d bytes still reserved after Close", k, n)
		}
	}
}

// readAll decodes dep.nar.xz (an 8 MiB dictionary) within b.
func readAll(b *Budget, ctx context.Context) error {
	r, err := NewBudgetReader(ctx, XZ, bytes.NewReader(xzNix), b)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	return err
}

// The budget holds two 8 MiB xz decoders: the third waits, and gets its
// share when one closes; one that waits too long is refused, and so is a
// stream that needs more than the whole budget.
func TestBudget_BlocksTheNextDecoder(t *testing.T) {
	xzNix = fixture(t, "dep.nar.xz")
	b := NewBudget(16<<20, 5*time.Second)
	r1, r2 := budgetReader(t, b, XZ), budgetReader(t, b, XZ)
	defer r2.Close()
	if n := b.InUse(); n != 16<<20 {
		t.Fatalf("two xz decoders hold %d bytes, want 16 MiB", n)
	}
	got := make(chan error, 1)
	go func() { got <- readAll(b, context.Background()) }()
	select {
	case err := <-got:
		t.Fatalf("the third decoder did not wait: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	r1.Close()
	if err := <-got; err != nil {
		t.Fatalf("the third decoder, after one closed: %v", err)
	}

	impatient := NewBudget(16<<20, 50*time.Millisecond)
	h1, h2 := budgetReader(t, impatient, XZ), budgetReader(t, impatient, XZ)
	defer h1.Close()
	defer h2.Close()
	err := readAll(impatient, context.Background())
	var be *BudgetError
	if !errors.As(err, &be) || be.Never || be.Waited < 50*time.Millisecond {
		t.Fatalf("third decoder on a full budget: %v; want a BudgetError after waiting", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = readAll(impatient, ctx)
	if !errors.As(err, &be) || !errors.Is(be.Canceled, context.Canceled) {
		t.Fatalf("third decoder with its request gone: %v; want a BudgetError naming the context", err)
	}

	err = readAll(NewBudget(4<<20, time.Hour), context.Background())
	if !errors.As(err, &be) || !be.Never {
		t.Fatalf("8 MiB dictionary on a 4 MiB budget: %v; want a BudgetError that never fits", err)
	}
}

// A later zstd frame with a larger window grows the reservation before the
// decoder reads it; the budget refuses it when the budget is full.
func TestBudget_LaterZstdFrameGrows(t *testing.T) {
	small := fixture(t, "dep.nar.zst")
	big := zstdFrame(t, 32<<20, []byte("more\n"))
	b := NewBudget(32<<20, 20*time.Millisecond)
	hog := budgetReader(t, b, Zstd)
	defer hog.Close()
	r, err := NewBudgetReader(context.Background(), Zstd, bytes.NewReader(append(append([]byte{}, small...), big...)), b)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	var be *BudgetError
	if !errors.As(err, &be) || be.Need != 32<<20 {
		t.Fatalf("second frame's 32 MiB window on a budget half used: %v; want a BudgetError", err)
	}
}

var xzNix []byte

// zstdFrame is a zstd frame declaring a window of 2^k bytes (no content
// size, no checksum) holding data in one raw block.
func zstdFrame(t *testing.T, window int, data []byte) []byte {
	t.Helper()
	log := 0
	for 1<<log < window {
		log++
	}
	if 1<<log != window || log < 10 {
		t.Fatalf("window %d is not a power of two ≥ 1 KiB", window)
	}
	f := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, byte(log-10) << 3}
	h := uint32(len(data))<<3 | 1 // raw, last
	f = append(f, byte(h), byte(h>>8), byte(h>>16))
	return append(f, data...)
}
