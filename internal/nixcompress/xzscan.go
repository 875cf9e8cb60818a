package nixcompress

import (
	"errors"
	"fmt"
	"io"
)

// xzDictBudget lets each xz block after the first allocate a dictionary
// only in proportion to the data decoded before it, as lzipDictBudget does
// for lzip members: ulikunitz/xz allocates every block's dictionary anew, so
// tiny blocks each declaring 64 MiB would cost a 64 MiB allocation every few
// dozen input bytes. Honest multi-block files pass with room to spare: xz -T
// and Nix's parallel-compression make blocks three times their dictionary,
// and even xz -9 --block-size=1MiB (64 MiB dictionaries for 1 MiB blocks)
// fits 64 bytes per byte.
const xzDictBudget = 64

// xzScan sits between an xz upload and ulikunitz/xz and follows the file's
// structure (xz-file-format 1.2.1: stream headers, block headers, LZMA2
// chunk headers, which carry their own sizes, indexes, footers and stream
// padding) without decoding it. Every block header of every stream is
// checked before the decoder can read it: a dictionary above maxXZDict, or
// beyond the proportional allowance, is refused, and the rest is reserved
// from the node's budget. (The library alone would allocate whatever a
// block declares, up to 4 GiB.)
//
// Only the framing is parsed; checksums and the index's contents are the
// decoder's to check. A file the scanner cannot follow is one the decoder
// refuses too (xz-file-format leaves no latitude in the framing), so an
// error here replaces the decoder's own, it never rejects a valid file.
type xzScan struct {
	r   io.Reader
	mem *reservation
	err error

	state     xzState
	buf       []byte // the structure being collected
	want      int    // len(buf) at which it is complete
	skip      int64  // bytes to pass unread (chunk payloads, padding, checks)
	checkSize int64  // of the current stream's blocks

	blockData int64  // LZMA2 bytes of the current block so far
	decoded   int64  // uncompressed bytes declared by LZMA2 chunks so far
	allocated int64  // dictionary bytes the decoder has been allowed
	blocks    int    // blocks begun, over all streams
	index     int64  // bytes of the current index so far
	varints   uint64 // index record varints still to read
	counted   bool   // the index's record count has been read
}

type xzState int

const (
	xzStreamHeader xzState = iota
	xzBlockOrIndex
	xzBlockHeader
	xzChunk
	xzIndexVarint
	xzStreamPadding
)

func newXZScan(r io.Reader, mem *reservation) *xzScan {
	return &xzScan{r: r, mem: mem, state: xzStreamHeader, want: 12}
}

// Read passes on what it reads once it has been scanned; bytes that complete
// a refused block header are never passed on.
func (s *xzScan) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if serr := s.scan(p[:n]); serr != nil {
		s.err = serr
		return 0, serr
	}
	return n, err
}

func (s *xzScan) scan(data []byte) error {
	for len(data) > 0 {
		if s.skip > 0 {
			k := int64(len(data))
			k = min(k, s.skip)
			s.skip -= k
			data = data[k:]
			continue
		}
		k := min(len(data), s.want-len(s.buf))
		s.buf = append(s.buf, data[:k]...)
		data = data[k:]
		if len(s.buf) < s.want {
			continue
		}
		if err := s.step(); err != nil {
			return err
		}
	}
	return nil
}

// expect starts collecting the next structure of want bytes.
func (s *xzScan) expect(st xzState, want int) {
	s.state, s.buf, s.want = st, s.buf[:0], want
}

// step parses a complete structure in s.buf and says what comes next.
func (s *xzScan) step() error {
	b := s.buf
	switch s.state {
	case xzStreamHeader:
		if string(b[:6]) != "\xfd7zXZ\x00" {
			return fmt.Errorf("xz: not a stream header (bytes %x)", b[:6])
		}
		if t := b[7] & 0x0F; t == 0 {
			s.checkSize = 0
		} else {
			s.checkSize = 4 << ((t - 1) / 3)
		}
		s.expect(xzBlockOrIndex, 1)
	case xzBlockOrIndex:
		if b[0] == 0 { // index indicator
			s.index, s.counted = 1, false
			s.expect(xzIndexVarint, 1)
			return nil
		}
		s.state, s.want = xzBlockHeader, (int(b[0])+1)*4
	case xzBlockHeader:
		if err := s.blockHeader(b); err != nil {
			return err
		}
		s.blockData = 0
		s.expect(xzChunk, 1)
	case xzChunk:
		return s.chunk(b)
	case xzIndexVarint:
		s.index++
		if b[len(b)-1]&0x80 != 0 { // the varint goes on
			if len(b) == 9 {
				return errors.New("xz: malformed index")
			}
			s.want++
			return nil
		}
		if !s.counted { // the first varint is the number of records
			count, _, _ := xzVarint(b)
			if count > 1<<40 {
				return errors.New("xz: malformed index")
			}
			s.counted, s.varints = true, 2*count
		} else {
			s.varints--
		}
		if s.varints > 0 { // each record: unpadded and uncompressed size
			s.expect(xzIndexVarint, 1)
			return nil
		}
		s.skip = (4-s.index%4)%4 + 4 + 12 // padding, CRC32, stream footer
		s.expect(xzStreamPadding, 1)
	case xzStreamPadding:
		if b[0] == 0 {
			s.buf = s.buf[:0]
			return nil
		}
		s.state, s.want = xzStreamHeader, 12 // b[0] begins the next stream
	}
	return nil
}

// chunk reads one LZMA2 chunk header (the first byte in s.buf, then as
// many more as it needs) and skips its payload.
func (s *xzScan) chunk(b []byte) error {
	c := b[0]
	need := 1
	switch {
	case c == 0: // end of the block's LZMA2 data
		s.blockData++
		s.skip = (4-s.blockData%4)%4 + s.checkSize
		s.expect(xzBlockOrIndex, 1)
		return nil
	case c == 1 || c == 2:
		need = 3
	case c >= 0x80:
		need = 5
		if c >= 0xC0 {
			need = 6 // with a properties byte
		}
	default:
		return fmt.Errorf("xz: invalid LZMA2 chunk header %#02x", c)
	}
	if len(b) < need {
		s.want = need
		return nil
	}
	var unpacked, packed int64
	if need == 3 {
		unpacked = int64(b[1])<<8 | int64(b[2]) + 1
		packed = unpacked
	} else {
		unpacked = int64(c&0x1F)<<16 | int64(b[1])<<8 | int64(b[2]) + 1
		packed = int64(b[3])<<8 | int64(b[4]) + 1
	}
	s.decoded += unpacked
	s.blockData += int64(need) + packed
	s.skip = packed
	s.expect(xzChunk, 1)
	return nil
}

// blockHeader finds the LZMA2 filter's dictionary size, checks it and
// reserves it before the decoder sees the header.
func (s *xzScan) blockHeader(b []byte) error {
	flags := b[1]
	p := b[2 : len(b)-4] // without the CRC32
	var ok bool
	if flags&0x40 != 0 { // compressed size present
		if _, p, ok = xzVarint(p); !ok {
			return errors.New("xz: malformed block header")
		}
	}
	if flags&0x80 != 0 { // uncompressed size present
		if _, p, ok = xzVarint(p); !ok {
			return errors.New("xz: malformed block header")
		}
	}
	filters := int(flags&3) + 1
	var dict int64 = -1
	for i := range filters {
		var id, size uint64
		if id, p, ok = xzVarint(p); !ok {
			return errors.New("xz: malformed block header")
		}
		if size, p, ok = xzVarint(p); !ok || uint64(len(p)) < size {
			return errors.New("xz: malformed block header")
		}
		props := p[:size]
		p = p[size:]
		if i < filters-1 {
			continue
		}
		if id != 0x21 || size != 1 {
			return fmt.Errorf("%w: xz filter %#x (only LZMA2 is supported)", ErrUnsupported, id)
		}
		bits := props[0] & 0x3F
		if bits > 40 {
			return fmt.Errorf("xz: invalid LZMA2 dictionary size %#02x", props[0])
		}
		dict = 0xFFFFFFFF
		if bits < 40 {
			dict = int64(2|bits&1) << (bits/2 + 11)
		}
	}
	s.blocks++
	switch {
	case dict > maxXZDict:
		return fmt.Errorf("%w: xz block %d declares a dictionary of %d MiB, over the limit of %d MiB", ErrUnsupported, s.blocks, dict>>20, maxXZDict>>20)
	case s.blocks > 1 && s.allocated+dict > maxXZDict+xzDictBudget*s.decoded:
		return fmt.Errorf("%w: xz block %d declares a %d KiB dictionary after %d bytes of data from %d blocks (dictionaries are limited to %d MiB plus %d bytes per byte of data)",
			ErrUnsupported, s.blocks, dict>>10, s.decoded, s.blocks-1, maxXZDict>>20, xzDictBudget)
	}
	s.allocated += dict
	return s.mem.need(dict)
}

// xzVarint decodes one xz multibyte integer (at most 9 bytes) from the front
// of p.
func xzVarint(p []byte) (uint64, []byte, bool) {
	var v uint64
	for i := 0; i < len(p) && i < 9; i++ {
		v |= uint64(p[i]&0x7F) << (7 * i)
		if p[i]&0x80 == 0 {
			return v, p[i+1:], true
		}
	}
	return 0, nil, false
}
