package nixcompress

import (
	"encoding/binary"
	"fmt"
	"io"
)

// zstdScan follows the framing of concatenated zstd frames (RFC 8878: frame
// headers, block headers, checksums, skippable frames) between an upload and
// klauspost/zstd, and reserves each frame's window from the node's budget
// before the decoder reads its header. The decoder refuses windows above
// maxZstdWindow itself (WithDecoderMaxWindow); the scanner refuses them too,
// so nothing is reserved for them.
type zstdScan struct {
	r   io.Reader
	mem *reservation
	err error

	state    zstdState
	buf      []byte
	want     int
	skip     int64
	checksum bool // the current frame ends with a 4-byte checksum
	frames   int
}

type zstdState int

const (
	zstdMagic zstdState = iota
	zstdSkippableSize
	zstdFrameHeader
	zstdBlockHeader
)

func newZstdScan(r io.Reader, mem *reservation) *zstdScan {
	return &zstdScan{r: r, mem: mem, want: 4}
}

func (s *zstdScan) Read(p []byte) (int, error) {
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

func (s *zstdScan) scan(data []byte) error {
	for len(data) > 0 {
		if s.skip > 0 {
			k := min(int64(len(data)), s.skip)
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

func (s *zstdScan) expect(st zstdState, want int) {
	s.state, s.buf, s.want = st, s.buf[:0], want
}

func (s *zstdScan) step() error {
	b := s.buf
	switch s.state {
	case zstdMagic:
		switch m := binary.LittleEndian.Uint32(b); {
		case m == 0xFD2FB528:
			s.state, s.want = zstdFrameHeader, 5 // magic + descriptor
		case m&0xFFFFFFF0 == 0x184D2A50:
			s.expect(zstdSkippableSize, 4)
		default:
			return fmt.Errorf("zstd: not a frame (bytes %x)", b)
		}
	case zstdSkippableSize:
		s.skip = int64(binary.LittleEndian.Uint32(b))
		s.expect(zstdMagic, 4)
	case zstdFrameHeader:
		fhd := b[4]
		single := fhd&0x20 != 0
		fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
		if fhd>>6 == 0 && single {
			fcsSize = 1
		}
		n := 5 + [4]int{0, 1, 2, 4}[fhd&3] + fcsSize
		if !single {
			n++ // window descriptor
		}
		if len(b) < n {
			s.want = n
			return nil
		}
		var window uint64
		if single {
			fcs := b[n-fcsSize : n]
			switch fcsSize {
			case 1:
				window = uint64(fcs[0])
			case 2:
				window = uint64(binary.LittleEndian.Uint16(fcs)) + 256
			case 4:
				window = uint64(binary.LittleEndian.Uint32(fcs))
			case 8:
				window = binary.LittleEndian.Uint64(fcs)
			}
		} else {
			wd := b[5]
			log := 10 + uint(wd>>3)
			base := uint64(1) << log
			window = base + base/8*uint64(wd&7)
		}
		s.frames++
		if window > maxZstdWindow {
			return fmt.Errorf("%w: zstd frame %d declares a window of %d MiB, over the limit of %d MiB", ErrUnsupported, s.frames, window>>20, maxZstdWindow>>20)
		}
		if err := s.mem.need(int64(max(window, zstdMinWindow))); err != nil {
			return err
		}
		s.checksum = fhd&0x04 != 0
		s.expect(zstdBlockHeader, 3)
	case zstdBlockHeader:
		h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		last, typ, size := h&1 != 0, (h>>1)&3, int64(h>>3)
		switch typ {
		case 1: // RLE: one byte repeated size times
			s.skip = 1
		case 3:
			return fmt.Errorf("zstd: reserved block type in frame %d", s.frames)
		default:
			s.skip = size
		}
		if !last {
			s.expect(zstdBlockHeader, 3)
			return nil
		}
		if s.checksum {
			s.skip += 4
		}
		s.expect(zstdMagic, 4)
	}
	return nil
}

// zstdMinWindow is what a frame reserves at least: a frame's window can be
// tiny, but the decoder's block buffers are not (blocks are up to 128 KiB).
const zstdMinWindow = 128 << 10
