package nixcompress

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Memory bounds for untrusted streams. Both exceed anything Nix writes: its
// zstd levels reach a 128 MiB window only at level 22 or in long mode, and
// xz -9 uses a 64 MiB dictionary.
const (
	maxZstdWindow = 128 << 20
	maxXZDict     = 64 << 20
)

// NewReader returns a streaming decompressor for k reading from r; None
// passes r through. Closing it releases the decoder but does not close r.
// It is NewBudgetReader without a budget.
//
// Corrupt or truncated input makes Read fail (with an error naming the
// compression), never end early with io.EOF: checksums are verified where
// the format has them (xz, bzip2, gzip, lz4 blocks and contents, lzip
// members, zstd frames that carry one), concatenated zstd frames, xz
// streams, bzip2 streams, gzip members, lz4 frames and lzip members are all
// read, and data after the last one is an error (Brotli and .lzma are single
// streams, .Z has no end at all). A compressed stream that decodes to
// nothing is an error too, since a NAR is never empty. The one format that
// cannot keep this promise is compress (.Z): it has no length and no
// checksum, so a cut right after a code decodes as a shorter stream, which
// the NAR validator and NarHash reject as they do for uncompressed uploads.
//
// Memory is bounded whatever the input: zstd windows above 128 MiB (in any
// frame), xz dictionaries above 64 MiB (in any block of any stream), .lzma
// and lzip dictionaries above 64 MiB, and large-window Brotli (standard
// Brotli windows are at most 16 MiB) are refused with errors wrapping
// ErrUnsupported; lz4 blocks are at most 4 MiB and .Z tables 64 Ki entries.
// xz blocks and lzip members after the first may declare dictionaries only
// in proportion to the data decoded before them.
func NewReader(k Kind, r io.Reader) (io.ReadCloser, error) {
	return NewBudgetReader(context.Background(), k, r, nil)
}

// NewBudgetReader is NewReader with the decoder's memory reserved from b
// (nil: no budget): what each header declares (an xz block's dictionary, a
// zstd frame's window, a Brotli window, an lz4 frame's block size, an lzma
// or lzip dictionary; a fixed amount for bzip2, gzip and .Z) is reserved
// before the decoder allocates it, waiting for other decoders to close if
// the budget is in use (see Budget), and released by Close. A reservation
// that fails makes NewBudgetReader or Read fail with a *BudgetError.
func NewBudgetReader(ctx context.Context, k Kind, r io.Reader, b *Budget) (io.ReadCloser, error) {
	if k == None {
		return io.NopCloser(r), nil
	}
	mem := &reservation{b: b, ctx: ctx, kind: k}
	dec, err := newDecoder(k, r, mem)
	if err != nil {
		mem.close()
		return nil, err
	}
	dec.mem = mem
	return dec, nil
}

// Fixed decoder memory of the formats whose headers declare none.
const (
	gzipMem     = 64 << 10        // a 32 KiB window and Huffman tables
	bzip2Mem    = 4 * 900_000     // compress/bzip2's tt array at the largest block size
	compressMem = 4 << lzwMaxBits // lzwReader's tables
)

func newDecoder(k Kind, r io.Reader, mem *reservation) (*decoder, error) {
	var rc io.ReadCloser
	var scanned func() error // the framing scanner's error, which wins over the library's
	switch k {
	case Zstd:
		scan := newZstdScan(r, mem)
		d, err := zstd.NewReader(scan, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("nixcompress: zstd: %w", err)
		}
		rc, scanned = d.IOReadCloser(), func() error { return scan.err }
	case XZ:
		scan := newXZScan(r, mem)
		tail := &xzTail{r: scan}
		d, err := xz.NewReader(tail)
		if scan.err != nil {
			return nil, headerError(k, scan.err)
		}
		if err != nil {
			return nil, fmt.Errorf("nixcompress: xz: %w", eofIsUnexpected(err))
		}
		rc, scanned = io.NopCloser(&xzEndChecked{d: d, tail: tail}), func() error { return scan.err }
	case Bzip2:
		if err := mem.need(bzip2Mem); err != nil {
			return nil, err
		}
		rc = io.NopCloser(bzip2.NewReader(r))
	case Gzip:
		if err := mem.need(gzipMem); err != nil {
			return nil, err
		}
		d, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("nixcompress: gzip: %w", eofIsUnexpected(err))
		}
		rc = d
	case Brotli:
		br := bufio.NewReader(r)
		head, _ := br.Peek(2)
		if len(head) > 0 && head[0]&0x7F == 0x11 {
			// WBITS 0010001 is RFC 9841's large-window marker; the
			// window's size, up to 1 GiB, is in the next 6 bits.
			window := "?"
			if len(head) == 2 {
				window = fmt.Sprint(head[1] & 0x3F)
			}
			return nil, fmt.Errorf("%w: large-window Brotli (window of 2^%s bytes; the limit is standard Brotli's 16 MiB)", ErrUnsupported, window)
		}
		if len(head) > 0 {
			if err := mem.need(int64(1) << brotliWindowBits(head[0])); err != nil {
				return nil, err
			}
		}
		rc = io.NopCloser(brotli.NewReader(br))
	case LZ4:
		d := newLZ4Reader(r)
		d.mem = mem
		if err := d.frameHeader(); err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	case LZMA:
		d, err := newLZMAReader(r, mem)
		if err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	case Lzip:
		d := newLzipReader(r)
		d.mem = mem
		if err := d.member(); err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	case Compress:
		if err := mem.need(compressMem); err != nil {
			return nil, err
		}
		d := newLZWReader(r)
		if err := d.header(); err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	default:
		return nil, unsupported(string(k))
	}
	return &decoder{rc: rc, kind: k, scanned: scanned}, nil
}

// brotliWindowBits decodes WBITS from a Brotli stream's first byte (RFC
// 7932 section 9.1; the large-window form is refused before this).
func brotliWindowBits(b byte) uint {
	switch {
	case b&1 == 0:
		return 16
	case (b>>1)&7 != 0:
		return 17 + uint((b>>1)&7)
	case (b>>4)&7 != 0:
		return 8 + uint((b>>4)&7)
	}
	return 17
}

// decoder names the compression in read errors and refuses empty output.
type decoder struct {
	rc      io.ReadCloser
	kind    Kind
	n       int64
	mem     *reservation
	scanned func() error // nil, or the framing scanner's error
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.rc.Read(p)
	d.n += int64(n)
	if err != nil && d.scanned != nil {
		if serr := d.scanned(); serr != nil {
			err = serr // the library may have reworded or replaced it
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrMemoryBudget) || errors.Is(err, ErrUnsupported): // they name the kind
	case errors.Is(err, io.EOF) && d.n == 0:
		err = fmt.Errorf("nixcompress: %s: empty stream: %w", d.kind, io.ErrUnexpectedEOF)
	case !errors.Is(err, io.EOF):
		err = fmt.Errorf("nixcompress: %s: %w", d.kind, err)
	}
	return n, err
}

func (d *decoder) Close() error {
	err := d.rc.Close()
	d.mem.close()
	return err
}

// headerError names the compression in an error from reading a stream's
// first header, unless it is a refusal (which names it already).
func headerError(k Kind, err error) error {
	if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrMemoryBudget) {
		return err
	}
	return fmt.Errorf("nixcompress: %s: %w", k, eofIsUnexpected(err))
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// xzEndChecked turns a silent early end into an error. ulikunitz/xz (v0.5.17)
// returns io.EOF when its input ends exactly after a block, before the
// stream's index and footer; at a real end the input's last bytes (before
// any stream padding) are a stream footer, so that is what is checked.
type xzEndChecked struct {
	d    io.Reader
	tail *xzTail
}

func (x *xzEndChecked) Read(p []byte) (int, error) {
	n, err := x.d.Read(p)
	if errors.Is(err, io.EOF) && !x.tail.endsWithFooter() {
		err = fmt.Errorf("xz stream ends without its index and footer: %w", io.ErrUnexpectedEOF)
	}
	return n, err
}

// xzTail remembers the last 12 bytes read before the trailing zero bytes.
type xzTail struct {
	r     io.Reader
	last  []byte // at most 12 bytes, ending with the last non-zero byte
	zeros int64  // zero bytes read since
}

func (t *xzTail) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	data := p[:n]
	if j := lastNonZero(data); j >= 0 {
		t.zeros = int64(n - 1 - j)
		t.last = append(t.last, data[max(0, j+1-12):j+1]...)
		t.last = t.last[max(0, len(t.last)-12):]
	} else {
		t.zeros += int64(n)
	}
	return n, err
}

// endsWithFooter checks for an xz stream footer (CRC32 of backward size and
// flags, backward size, flags, "YZ") followed by padding in 4-byte groups.
func (t *xzTail) endsWithFooter() bool {
	f := t.last
	return len(f) == 12 && t.zeros%4 == 0 && f[10] == 'Y' && f[11] == 'Z' &&
		crc32.ChecksumIEEE(f[4:10]) == binary.LittleEndian.Uint32(f[:4])
}

func lastNonZero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}
