package nixcompress

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// maxLZMADict bounds the dictionary of .lzma and lzip streams, as maxXZDict
// does for xz: lzma -9 and lzip -9 use 64 and 32 MiB, Nix (libarchive's
// default level) 8 MiB.
const maxLZMADict = maxXZDict

// newLZMAReader decodes a .lzma ("LZMA alone") stream: a 13-byte header
// (properties, dictionary size, uncompressed size or all ones) and one raw
// LZMA stream, ended by an end marker, by the declared size, or both.
// ulikunitz/xz/lzma reads it byte by byte from br, so br is exactly at the
// stream's end afterwards and lzmaEnd can check that nothing follows.
func newLZMAReader(r io.Reader, mem *reservation) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(lzma.HeaderLen)
	if err != nil {
		return nil, fmt.Errorf("reading the header: %w", eofIsUnexpected(err))
	}
	if dict := binary.LittleEndian.Uint32(head[1:5]); dict > maxLZMADict {
		return nil, fmt.Errorf("%w: lzma dictionary of %d MiB exceeds the limit of %d MiB", ErrUnsupported, dict>>20, maxLZMADict>>20)
	} else if err := mem.need(int64(max(dict, lzma.MinDictCap))); err != nil {
		return nil, err
	}
	d, err := lzma.ReaderConfig{DictCap: maxLZMADict}.NewReader(br)
	if err != nil {
		return nil, eofIsUnexpected(err)
	}
	return &lzmaEnd{d: d, src: br, what: "lzma stream"}, nil
}

// lzmaEnd turns the end of an LZMA decoder into an error unless its input
// ends there too.
type lzmaEnd struct {
	d    io.Reader
	src  *bufio.Reader
	what string
}

func (l *lzmaEnd) Read(p []byte) (int, error) {
	n, err := l.d.Read(p)
	if errors.Is(err, io.EOF) {
		err = nothingAfter(l.src, l.what)
	}
	return n, err
}

// nothingAfter is io.EOF when br has no more bytes, and an error naming the
// data that ended otherwise.
func nothingAfter(br *bufio.Reader, what string) error {
	b, err := br.Peek(8)
	if len(b) > 0 {
		return fmt.Errorf("data after the end of the %s (bytes %x)", what, b)
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return err
}

// lzip members (lzip manual, "File format"): "LZIP", version 1, a coded
// dictionary size, a raw LZMA stream (lc=3 lp=0 pb=2) ended by an end
// marker, and a trailer of the data's CRC32, the data size and the member
// size, all little-endian.
const (
	lzipHeaderLen  = 6
	lzipTrailerLen = 20
	lzipProps      = (2*5+0)*9 + 3 // pb=2, lp=0, lc=3: 0x5D
	lzipMinDict    = 4 << 10
	lzipMaxDict    = 512 << 20
	// lzipDictBudget lets later members allocate dictionaries only in
	// proportion to the data already decoded (ulikunitz/xz allocates a
	// member's whole dictionary up front): a file of tiny members each
	// declaring 64 MiB would otherwise cost a 64 MiB allocation every few
	// dozen input bytes. Honest multi-member files (lzip -b, plzip) size a
	// member's dictionary to at most its data.
	lzipDictBudget = 8
)

// lzipReader decodes concatenated lzip members, verifying each trailer.
type lzipReader struct {
	src     *bufio.Reader
	d       *lzma.Reader // the current member's decoder; nil between members
	in      countingByteReader
	crc     uint32
	size    uint64 // data decoded from the current member
	members int
	total   int64 // data decoded from all members
	alloc   int64 // dictionary bytes allocated for all members
	err     error
	mem     *reservation
}

func newLzipReader(r io.Reader) *lzipReader {
	return &lzipReader{src: bufio.NewReaderSize(r, 64<<10)}
}

func (z *lzipReader) Read(p []byte) (int, error) {
	for z.err == nil {
		if z.d == nil {
			z.err = z.member()
			continue
		}
		n, err := z.d.Read(p)
		z.crc = crc32.Update(z.crc, crc32.IEEETable, p[:n])
		z.size += uint64(n)
		z.total += int64(n)
		switch {
		case errors.Is(err, io.EOF):
			z.err = z.trailer()
		case err != nil:
			z.err = err
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, z.err
}

// member starts the next member; io.EOF when the input ends after one.
func (z *lzipReader) member() error {
	var h [lzipHeaderLen]byte
	n, err := io.ReadFull(z.src, h[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF) && z.members > 0:
		return io.EOF
	case err != nil && z.members > 0 && string(h[:min(n, 4)]) != "LZIP"[:min(n, 4)]:
		return fmt.Errorf("data after the last member (bytes %x)", h[:n])
	case err != nil:
		return fmt.Errorf("reading a member header: %w", eofIsUnexpected(err))
	case string(h[:4]) != "LZIP" && z.members > 0:
		return fmt.Errorf("data after the last member (bytes %x)", h[:])
	case string(h[:4]) != "LZIP":
		return fmt.Errorf("not an lzip member (bytes %x)", h[:])
	case h[4] != 1:
		return fmt.Errorf("%w: lzip version %d (only version 1 exists since lzip 1.4)", ErrUnsupported, h[4])
	}
	dict := lzipDictSize(h[5])
	switch {
	case dict < lzipMinDict || dict > lzipMaxDict:
		return fmt.Errorf("invalid dictionary size byte %#02x", h[5])
	case dict > maxLZMADict:
		return fmt.Errorf("%w: lzip dictionary of %d MiB exceeds the limit of %d MiB", ErrUnsupported, dict>>20, maxLZMADict>>20)
	case z.alloc+dict > maxLZMADict+lzipDictBudget*z.total:
		return fmt.Errorf("%w: lzip member %d declares a %d KiB dictionary after %d bytes of data from %d members (dictionaries are limited to %d MiB plus %d bytes per byte of data)",
			ErrUnsupported, z.members+1, dict>>10, z.total, z.members, maxLZMADict>>20, lzipDictBudget)
	}
	z.alloc += dict
	if err := z.mem.need(dict); err != nil {
		return err
	}
	// ulikunitz/xz/lzma decodes raw LZMA only behind a .lzma header, so
	// give it one: lzip's fixed properties, its dictionary, unknown size
	// (an end marker is then required, as lzip requires).
	var head [lzma.HeaderLen]byte
	head[0] = lzipProps
	binary.LittleEndian.PutUint32(head[1:5], uint32(dict))
	binary.LittleEndian.PutUint64(head[5:], ^uint64(0))
	z.in = countingByteReader{head: head[:], src: z.src}
	d, err := lzma.ReaderConfig{DictCap: maxLZMADict}.NewReader(&z.in)
	if err != nil {
		return fmt.Errorf("member %d: %w", z.members+1, eofIsUnexpected(err))
	}
	z.d, z.crc, z.size = d, 0, 0
	return nil
}

// lzipDictSize decodes the header's dictionary size byte: 2^(b&31) minus
// (b>>5) sixteenths of it.
func lzipDictSize(b byte) int64 {
	base := int64(1) << (b & 0x1F)
	return base - base/16*int64(b>>5)
}

// trailer checks the current member's trailer against what was decoded.
func (z *lzipReader) trailer() error {
	var t [lzipTrailerLen]byte
	if _, err := io.ReadFull(z.src, t[:]); err != nil {
		return fmt.Errorf("reading member %d's trailer: %w", z.members+1, eofIsUnexpected(err))
	}
	crc := binary.LittleEndian.Uint32(t[0:4])
	size := binary.LittleEndian.Uint64(t[4:12])
	memberSize := binary.LittleEndian.Uint64(t[12:20])
	wantMember := uint64(lzipHeaderLen + z.in.n + lzipTrailerLen)
	switch {
	case crc != z.crc:
		return fmt.Errorf("member %d: CRC32 %08x, its trailer says %08x", z.members+1, z.crc, crc)
	case size != z.size:
		return fmt.Errorf("member %d: %d bytes of data, its trailer says %d", z.members+1, z.size, size)
	case memberSize != wantMember:
		return fmt.Errorf("member %d: %d bytes long, its trailer says %d", z.members+1, wantMember, memberSize)
	}
	z.members++
	z.d = nil
	return nil
}

// countingByteReader serves a synthesised header, then the bytes of src,
// counting the latter.
type countingByteReader struct {
	head []byte
	src  *bufio.Reader
	n    int64
}

func (c *countingByteReader) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	n, err := c.src.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingByteReader) ReadByte() (byte, error) {
	if len(c.head) > 0 {
		b := c.head[0]
		c.head = c.head[1:]
		return b, nil
	}
	b, err := c.src.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}
