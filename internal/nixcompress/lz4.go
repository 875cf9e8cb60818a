package nixcompress

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/pierrec/lz4/v4"
)

// The LZ4 frame format (lz4_Frame_format.md, version 1.6.x).
const (
	lz4FrameMagic  = 0x184D2204
	lz4SkipMagic   = 0x184D2A50 // low 4 bits free: 16 skippable magics
	lz4LegacyMagic = 0x184C2102
	lz4MaxBlock    = 4 << 20 // block maximum size 7, the largest
	lz4Window      = 64 << 10
)

// lz4Reader decodes concatenated LZ4 frames (skippable frames are skipped)
// on top of pierrec/lz4's block decoder. pierrec/lz4's own frame Reader
// accepts legacy frames, which have no end mark, so a legacy stream cut at a
// block boundary reads as complete; this reader refuses them instead and
// owns every other check: descriptor and block checksums, block sizes,
// content size and content checksum, a truncated frame and data after the
// last frame. Memory: one compressed and one decoded block (at most 4 MiB
// each) and a 64 KiB window for linked blocks.
type lz4Reader struct {
	r       *bufio.Reader
	frames  int // LZ4 frames begun
	skipped int // skippable frames
	inFrame bool

	// The current frame's descriptor.
	flg      byte
	blockMax int
	size     uint64
	produced uint64
	sum      xxh32

	cbuf    []byte // a compressed block
	out     []byte // a decoded block
	pending []byte // part of out not yet returned
	window  []byte // the last 64 KiB decoded in this frame, for linked blocks
	err     error
	mem     *reservation // for the block buffers and the window
}

// FLG bits.
const (
	lz4Independent  = 1 << 5
	lz4BlockSum     = 1 << 4
	lz4ContentSize  = 1 << 3
	lz4ContentSum   = 1 << 2
	lz4FlagReserved = 1 << 1
	lz4DictID       = 1 << 0
)

func newLZ4Reader(r io.Reader) *lz4Reader {
	return &lz4Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

func (z *lz4Reader) Read(p []byte) (int, error) {
	for len(z.pending) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		if !z.inFrame {
			z.err = z.frameHeader()
		} else {
			z.err = z.block()
		}
	}
	n := copy(p, z.pending)
	z.pending = z.pending[n:]
	return n, nil
}

func (z *lz4Reader) readFull(b []byte, what string) error {
	if _, err := io.ReadFull(z.r, b); err != nil {
		return fmt.Errorf("reading %s: %w", what, eofIsUnexpected(err))
	}
	return nil
}

// frameHeader reads the next frame's magic and descriptor, skipping
// skippable frames; io.EOF only where a frame may start and one was read.
func (z *lz4Reader) frameHeader() error {
	var b [4]byte
	for {
		n, err := io.ReadFull(z.r, b[:])
		switch {
		case n == 0 && errors.Is(err, io.EOF) && z.frames > 0:
			return io.EOF
		case n == 0 && errors.Is(err, io.EOF) && z.skipped > 0:
			return fmt.Errorf("only skippable frames: %w", io.ErrUnexpectedEOF)
		case err != nil:
			return fmt.Errorf("reading a frame magic: %w", eofIsUnexpected(err))
		}
		magic := binary.LittleEndian.Uint32(b[:])
		switch {
		case magic == lz4FrameMagic:
		case magic&^0xF == lz4SkipMagic:
			if err := z.readFull(b[:], "a skippable frame's size"); err != nil {
				return err
			}
			skip := int64(binary.LittleEndian.Uint32(b[:]))
			if n, err := io.CopyN(io.Discard, z.r, skip); err != nil {
				return fmt.Errorf("skippable frame of %d bytes ends after %d: %w", skip, n, eofIsUnexpected(err))
			}
			z.skipped++
			continue
		case magic == lz4LegacyMagic:
			return fmt.Errorf("%w: legacy LZ4 frames (lz4 -l) have no end mark; use the LZ4 frame format", ErrUnsupported)
		case z.frames > 0:
			return fmt.Errorf("data after the last frame (bytes %x)", b)
		default:
			return fmt.Errorf("not an LZ4 frame (magic %x)", b)
		}
		break
	}
	var d [2 + 8 + 4 + 1]byte
	if err := z.readFull(d[:2], "a frame descriptor"); err != nil {
		return err
	}
	flg, bd := d[0], d[1]
	if flg>>6 != 1 {
		return fmt.Errorf("frame version %d, want 1", flg>>6)
	}
	if flg&lz4FlagReserved != 0 || bd&0x8F != 0 {
		return fmt.Errorf("frame descriptor %x has reserved bits set", d[:2])
	}
	idx := bd >> 4 & 7
	if idx < 4 {
		return fmt.Errorf("invalid block maximum size %d", idx)
	}
	n := 2
	if flg&lz4ContentSize != 0 {
		n += 8
	}
	if flg&lz4DictID != 0 {
		n += 4
	}
	if err := z.readFull(d[2:n+1], "a frame descriptor"); err != nil {
		return err
	}
	if want := byte(xxh32Sum(d[:n]) >> 8); d[n] != want {
		return fmt.Errorf("frame descriptor checksum %02x, want %02x", d[n], want)
	}
	if flg&lz4DictID != 0 {
		return fmt.Errorf("%w: LZ4 frame needs dictionary %#x", ErrUnsupported, binary.LittleEndian.Uint32(d[n-4:n]))
	}
	z.flg, z.blockMax = flg, 1<<(8+2*idx)
	if err := z.mem.need(int64(2*z.blockMax + lz4Window)); err != nil {
		return err
	}
	z.size = 0
	if flg&lz4ContentSize != 0 {
		z.size = binary.LittleEndian.Uint64(d[2:10])
	}
	z.produced, z.sum, z.window = 0, newXXH32(), z.window[:0]
	z.inFrame = true
	z.frames++
	return nil
}

// block decodes the next block into pending, or ends the frame.
func (z *lz4Reader) block() error {
	var b [4]byte
	if err := z.readFull(b[:], "a block size"); err != nil {
		return err
	}
	v := binary.LittleEndian.Uint32(b[:])
	size, stored := int(v&0x7FFFFFFF), v&0x80000000 != 0
	if size == 0 { // end mark (the reference decoder also takes 0x80000000)
		return z.frameEnd()
	}
	if size > z.blockMax {
		return fmt.Errorf("block of %d bytes exceeds the frame's maximum of %d", size, z.blockMax)
	}
	if cap(z.cbuf) < size {
		z.cbuf = make([]byte, max(size, min(2*cap(z.cbuf), lz4MaxBlock)))
	}
	data := z.cbuf[:size]
	if err := z.readFull(data, "a block"); err != nil {
		return err
	}
	if z.flg&lz4BlockSum != 0 {
		if err := z.readFull(b[:], "a block checksum"); err != nil {
			return err
		}
		if got, want := xxh32Sum(data), binary.LittleEndian.Uint32(b[:]); got != want {
			return fmt.Errorf("block checksum %08x, want %08x", got, want)
		}
	}
	if stored {
		z.pending = data
	} else {
		if cap(z.out) < z.blockMax {
			z.out = make([]byte, z.blockMax)
		}
		out := z.out[:z.blockMax]
		var n int
		var err error
		if z.flg&lz4Independent != 0 {
			n, err = lz4.UncompressBlock(data, out)
		} else {
			n, err = lz4.UncompressBlockWithDict(data, out, z.window)
		}
		if err != nil {
			return fmt.Errorf("corrupt block: %w", err)
		}
		z.pending = out[:n]
	}
	z.produced += uint64(len(z.pending))
	if z.flg&lz4ContentSize != 0 && z.produced > z.size {
		return fmt.Errorf("frame decodes to more than its declared %d bytes", z.size)
	}
	if z.flg&lz4ContentSum != 0 {
		z.sum.Write(z.pending)
	}
	if z.flg&lz4Independent == 0 {
		z.keepWindow(z.pending)
	}
	return nil
}

// keepWindow appends p to the window of linked blocks, keeping its last
// 64 KiB (in a buffer of at most twice that, copied down when full).
func (z *lz4Reader) keepWindow(p []byte) {
	if len(p) >= lz4Window {
		z.window = append(z.window[:0], p[len(p)-lz4Window:]...)
		return
	}
	if len(z.window)+len(p) > 2*lz4Window {
		keep := lz4Window - len(p)
		z.window = append(z.window[:0], z.window[len(z.window)-keep:]...)
	}
	z.window = append(z.window, p...)
}

func (z *lz4Reader) frameEnd() error {
	if z.flg&lz4ContentSum != 0 {
		var b [4]byte
		if err := z.readFull(b[:], "the content checksum"); err != nil {
			return err
		}
		if got, want := z.sum.Sum32(), binary.LittleEndian.Uint32(b[:]); got != want {
			return fmt.Errorf("content checksum %08x, want %08x", got, want)
		}
	}
	if z.flg&lz4ContentSize != 0 && z.produced != z.size {
		return fmt.Errorf("frame decodes to %d bytes, its header says %d", z.produced, z.size)
	}
	z.inFrame = false
	return nil
}

// xxh32 is the streaming XXH32 hash with seed 0, which LZ4 frames use for
// their checksums (pierrec/lz4 keeps its implementation internal).
type xxh32 struct {
	v     [4]uint32
	buf   [16]byte
	n     int // bytes in buf
	total uint64
}

const (
	xxhPrime1 uint32 = 2654435761
	xxhPrime2 uint32 = 2246822519
	xxhPrime3 uint32 = 3266489917
	xxhPrime4 uint32 = 668265263
	xxhPrime5 uint32 = 374761393
)

func newXXH32() xxh32 {
	p1, p2 := xxhPrime1, xxhPrime2 // variables: the sums wrap
	return xxh32{v: [4]uint32{p1 + p2, p2, 0, -p1}}
}

func xxhRound(acc, lane uint32) uint32 {
	return bits.RotateLeft32(acc+lane*xxhPrime2, 13) * xxhPrime1
}

func (h *xxh32) stripes(p []byte) {
	v0, v1, v2, v3 := h.v[0], h.v[1], h.v[2], h.v[3]
	for ; len(p) >= 16; p = p[16:] {
		v0 = xxhRound(v0, binary.LittleEndian.Uint32(p))
		v1 = xxhRound(v1, binary.LittleEndian.Uint32(p[4:]))
		v2 = xxhRound(v2, binary.LittleEndian.Uint32(p[8:]))
		v3 = xxhRound(v3, binary.LittleEndian.Uint32(p[12:]))
	}
	h.v = [4]uint32{v0, v1, v2, v3}
}

// Write adds p to the hash.
func (h *xxh32) Write(p []byte) {
	h.total += uint64(len(p))
	if h.n > 0 {
		k := copy(h.buf[h.n:], p)
		h.n += k
		p = p[k:]
		if h.n < 16 {
			return
		}
		h.stripes(h.buf[:])
		h.n = 0
	}
	whole := len(p) &^ 15
	h.stripes(p[:whole])
	h.n = copy(h.buf[:], p[whole:])
}

// Sum32 returns the hash of everything written.
func (h *xxh32) Sum32() uint32 {
	var acc uint32
	if h.total >= 16 {
		acc = bits.RotateLeft32(h.v[0], 1) + bits.RotateLeft32(h.v[1], 7) +
			bits.RotateLeft32(h.v[2], 12) + bits.RotateLeft32(h.v[3], 18)
	} else {
		acc = xxhPrime5 // seed 0
	}
	acc += uint32(h.total)
	p := h.buf[:h.n]
	for ; len(p) >= 4; p = p[4:] {
		acc = bits.RotateLeft32(acc+binary.LittleEndian.Uint32(p)*xxhPrime3, 17) * xxhPrime4
	}
	for _, c := range p {
		acc = bits.RotateLeft32(acc+uint32(c)*xxhPrime5, 11) * xxhPrime1
	}
	acc ^= acc >> 15
	acc *= xxhPrime2
	acc ^= acc >> 13
	acc *= xxhPrime3
	acc ^= acc >> 16
	return acc
}

func xxh32Sum(p []byte) uint32 {
	h := newXXH32()
	h.Write(p)
	return h.Sum32()
}
