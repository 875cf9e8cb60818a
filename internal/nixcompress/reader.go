package nixcompress

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
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
// Memory is bounded whatever the input: zstd windows above 128 MiB, xz
// dictionaries above 64 MiB (declared in the first block), .lzma and lzip
// dictionaries above 64 MiB, and large-window Brotli (standard Brotli
// windows are at most 16 MiB) are refused with errors wrapping
// ErrUnsupported; lz4 blocks are at most 4 MiB and .Z tables 64 Ki entries.
func NewReader(k Kind, r io.Reader) (io.ReadCloser, error) {
	var rc io.ReadCloser
	switch k {
	case None:
		return io.NopCloser(r), nil
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("nixcompress: zstd: %w", err)
		}
		rc = d.IOReadCloser()
	case XZ:
		br := bufio.NewReader(r)
		if dict, ok := xzFirstDict(br); ok && dict > maxXZDict {
			return nil, fmt.Errorf("%w: xz dictionary of %d MiB exceeds the limit of %d MiB", ErrUnsupported, dict>>20, maxXZDict>>20)
		}
		tail := &xzTail{r: br}
		d, err := xz.NewReader(tail)
		if err != nil {
			return nil, fmt.Errorf("nixcompress: xz: %w", eofIsUnexpected(err))
		}
		rc = io.NopCloser(&xzEndChecked{d: d, tail: tail})
	case Bzip2:
		rc = io.NopCloser(bzip2.NewReader(r))
	case Gzip:
		d, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("nixcompress: gzip: %w", eofIsUnexpected(err))
		}
		rc = d
	case Brotli:
		br := bufio.NewReader(r)
		if head, _ := br.Peek(2); len(head) > 0 && head[0]&0x7F == 0x11 {
			// WBITS 0010001 is RFC 9841's large-window marker; the
			// window's size, up to 1 GiB, is in the next 6 bits.
			window := "?"
			if len(head) == 2 {
				window = fmt.Sprint(head[1] & 0x3F)
			}
			return nil, fmt.Errorf("%w: large-window Brotli (window of 2^%s bytes; the limit is standard Brotli's 16 MiB)", ErrUnsupported, window)
		}
		rc = io.NopCloser(brotli.NewReader(br))
	case LZ4:
		d := newLZ4Reader(r)
		if err := d.frameHeader(); err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	case LZMA:
		d, err := newLZMAReader(r)
		if err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	case Lzip:
		d := newLzipReader(r)
		if err := d.member(); err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	case Compress:
		d := newLZWReader(r)
		if err := d.header(); err != nil {
			return nil, headerError(k, err)
		}
		rc = io.NopCloser(d)
	default:
		return nil, unsupported(string(k))
	}
	return &decoder{rc: rc, kind: k}, nil
}

// decoder names the compression in read errors and refuses empty output.
type decoder struct {
	rc   io.ReadCloser
	kind Kind
	n    int64
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.rc.Read(p)
	d.n += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && d.n == 0:
		err = fmt.Errorf("nixcompress: %s: empty stream: %w", d.kind, io.ErrUnexpectedEOF)
	case !errors.Is(err, io.EOF):
		err = fmt.Errorf("nixcompress: %s: %w", d.kind, err)
	}
	return n, err
}

func (d *decoder) Close() error { return d.rc.Close() }

// headerError names the compression in an error from reading a stream's
// first header, unless it is a refusal (which names it already).
func headerError(k Kind, err error) error {
	if errors.Is(err, ErrUnsupported) {
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

// xzFirstDict reads the LZMA2 dictionary size declared by the first block
// header of an xz stream without consuming input; ok is false when the
// header cannot be parsed (xz.NewReader then reports the problem). Later
// blocks and streams are not inspected: xz and Nix use one setting for all
// blocks, so this stops oversized dictionaries from every honest encoder.
func xzFirstDict(br *bufio.Reader) (dict uint64, ok bool) {
	const streamHeader = 12
	head, _ := br.Peek(streamHeader + 1024) // a block header is at most 1024 bytes
	if len(head) < streamHeader+2 || head[streamHeader] == 0 {
		return 0, false // too short, or an index (no blocks)
	}
	block := head[streamHeader:]
	size := (int(block[0]) + 1) * 4
	if len(block) < size {
		return 0, false
	}
	flags := block[1]
	p := block[2:size]
	if flags&0x40 != 0 { // compressed size present
		p = skipVarint(p)
	}
	if flags&0x80 != 0 { // uncompressed size present
		p = skipVarint(p)
	}
	for range int(flags&3) + 1 {
		if len(p) < 2 {
			return 0, false
		}
		id, propSize := p[0], int(p[1])
		if id&0x80 != 0 || p[1]&0x80 != 0 || len(p) < 2+propSize {
			return 0, false // multi-byte IDs are not LZMA2
		}
		if id == 0x21 && propSize == 1 { // LZMA2: the last filter
			bits := p[2] & 0x3F
			if bits > 40 {
				return 0, false
			}
			if bits == 40 {
				return 0xFFFFFFFF, true
			}
			return uint64(2|bits&1) << (bits/2 + 11), true
		}
		p = p[2+propSize:]
	}
	return 0, false
}

// skipVarint drops one xz multibyte integer from the front of p.
func skipVarint(p []byte) []byte {
	for i, b := range p {
		if b&0x80 == 0 {
			return p[i+1:]
		}
	}
	return nil
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
