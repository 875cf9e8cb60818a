package nixcompress

import (
	"bufio"
	"fmt"
	"io"
)

// The .Z format of compress(1), as ncompress 4.2.4 writes and reads it and
// libarchive (which Nix uses) writes it: magic 1F 9D, a flags byte (maximum
// code width 9–16 in the low 5 bits, block mode in 0x80, 0x60 reserved), then
// LZW codes packed least significant bit first. Codes start 9 bits wide and
// grow by one bit whenever the next table entry would not fit, up to the
// maximum; in block mode code 256 clears the table and restarts at 9 bits.
// Codes are written in groups of eight, a group of n-bit codes being n
// bytes: after a width change or a clear the rest of the current group is
// padding (the quirk of the original compress, which every decoder must
// copy).
const (
	lzwClear    = 256
	lzwInitBits = 9
	lzwMaxBits  = 16
)

// lzwReader decodes one .Z stream. Memory: the 64 Ki-entry table and a
// 64 KiB string stack, whatever the input.
//
// The format has no length and no checksum, so a cut exactly after a code
// (or a whole group of them) is a shorter valid stream: only the NAR
// validator and NarHash catch it, as for an uncompressed upload. What can
// be seen is rejected: input ending inside a code, 8 or more bits left
// after the last code, non-zero bits after it (compress pads the last byte
// with zeros), codes not yet defined, a first code that is not a byte.
type lzwReader struct {
	src     *bufio.Reader
	started bool
	block   bool
	maxBits uint

	nBits      uint
	maxCode    int // the width grows when freeEnt exceeds it
	maxMaxCode int
	freeEnt    int
	oldCode    int
	finChar    byte
	prefix     [1 << lzwMaxBits]uint16
	suffix     [1 << lzwMaxBits]byte
	stack      [1 << lzwMaxBits]byte

	group [lzwMaxBits + 2]byte // the current group, 2 bytes of slack for reading codes
	gLen  int                  // bytes in group
	gPos  uint                 // bit position of the next code in group
	eof   bool                 // the input ended in or before group

	out []byte // decoded bytes not yet returned (in stack)
	err error
}

func newLZWReader(r io.Reader) *lzwReader {
	return &lzwReader{src: bufio.NewReaderSize(r, 64<<10)}
}

func (z *lzwReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(z.out) > 0 {
			k := copy(p[n:], z.out)
			z.out = z.out[k:]
			n += k
			continue
		}
		if z.err != nil {
			break
		}
		z.err = z.step()
	}
	if n > 0 {
		return n, nil
	}
	return 0, z.err
}

func (z *lzwReader) header() error {
	var h [3]byte
	if _, err := io.ReadFull(z.src, h[:]); err != nil {
		return fmt.Errorf("reading the header: %w", eofIsUnexpected(err))
	}
	if h[0] != 0x1F || h[1] != 0x9D {
		return fmt.Errorf("not a .Z stream (magic %x)", h[:2])
	}
	bits := uint(h[2] & 0x1F)
	switch {
	case h[2]&0x60 != 0:
		return fmt.Errorf("flags %#02x have reserved bits set", h[2])
	case bits > lzwMaxBits:
		return fmt.Errorf("%w: compress with %d-bit codes (the limit is %d, as in ncompress)", ErrUnsupported, bits, lzwMaxBits)
	case bits < lzwInitBits:
		return fmt.Errorf("invalid maximum code width %d", bits)
	}
	z.started = true
	z.block = h[2]&0x80 != 0
	z.maxBits = bits
	z.maxMaxCode = 1 << bits
	z.nBits = lzwInitBits
	z.maxCode = 1<<lzwInitBits - 1
	z.freeEnt = 256
	if z.block {
		z.freeEnt = lzwClear + 1
	}
	z.oldCode = -1
	for i := range 256 {
		z.suffix[i] = byte(i)
	}
	return nil
}

// step decodes one code into out (nothing for a clear code); io.EOF at a
// valid end.
func (z *lzwReader) step() error {
	if z.freeEnt > z.maxCode {
		if err := z.endGroup(); err != nil {
			return err
		}
		z.nBits++
		if z.nBits == z.maxBits {
			z.maxCode = z.maxMaxCode
		} else {
			z.maxCode = 1<<z.nBits - 1
		}
	}
	c, err := z.readCode()
	if err != nil {
		return err
	}
	if z.oldCode == -1 {
		if c >= 256 {
			return fmt.Errorf("corrupt input: first code %d is not a byte", c)
		}
		z.oldCode, z.finChar = c, byte(c)
		z.stack[0] = byte(c)
		z.out = z.stack[:1]
		return nil
	}
	if c == lzwClear && z.block {
		if err := z.endGroup(); err != nil {
			return err
		}
		z.freeEnt = lzwClear // the next entry, made by the next code, is never used
		z.nBits = lzwInitBits
		z.maxCode = 1<<lzwInitBits - 1
		return nil
	}
	in := c
	sp := len(z.stack)
	if c >= z.freeEnt {
		if c > z.freeEnt {
			return fmt.Errorf("corrupt input: code %d before entry %d is defined", c, z.freeEnt)
		}
		sp--
		z.stack[sp] = z.finChar
		c = z.oldCode
	}
	for c >= 256 {
		if sp == 1 { // cannot happen: every entry's prefix is an earlier entry
			return fmt.Errorf("corrupt input: string of code %d too long", in)
		}
		sp--
		z.stack[sp] = z.suffix[c]
		c = int(z.prefix[c])
	}
	z.finChar = byte(c)
	sp--
	z.stack[sp] = z.finChar
	if z.freeEnt < z.maxMaxCode {
		z.prefix[z.freeEnt] = uint16(z.oldCode)
		z.suffix[z.freeEnt] = z.finChar
		z.freeEnt++
	}
	z.oldCode = in
	z.out = z.stack[sp:]
	return nil
}

// readCode returns the next code of the current width; io.EOF where the
// input validly ends.
func (z *lzwReader) readCode() (int, error) {
	for z.gPos+z.nBits > uint(z.gLen)*8 {
		if z.eof {
			return 0, z.endGroup()
		}
		n, err := io.ReadFull(z.src, z.group[:z.nBits])
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			z.eof = true
		case err != nil:
			return 0, err
		}
		z.gLen, z.gPos = n, 0
	}
	i, shift := z.gPos>>3, z.gPos&7
	v := uint32(z.group[i]) | uint32(z.group[i+1])<<8 | uint32(z.group[i+2])<<16
	z.gPos += z.nBits
	return int(v >> shift & (1<<z.nBits - 1)), nil
}

// endGroup drops the rest of the current group (padding after a width
// change or a clear) so the next code starts a new one. Where the input
// ends in the group, that rest must be what compress leaves after its last
// code: under 8 bits, all zero; then the end is io.EOF.
func (z *lzwReader) endGroup() error {
	if z.eof {
		rest := uint(z.gLen)*8 - z.gPos
		switch {
		case rest >= 8:
			return fmt.Errorf("input ends inside a code (%d bits after the last one): %w", rest, io.ErrUnexpectedEOF)
		case rest > 0 && z.group[z.gLen-1]>>(z.gPos&7) != 0:
			return fmt.Errorf("input ends inside a code (non-zero bits after the last one): %w", io.ErrUnexpectedEOF)
		}
		return io.EOF
	}
	z.gLen, z.gPos = 0, 0
	return nil
}
