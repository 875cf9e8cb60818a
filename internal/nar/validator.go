package nar

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors; FormatError wraps ErrFormat, Close's truncation error wraps ErrTruncated.
var (
	ErrFormat    = errors.New("nar: malformed archive")
	ErrTruncated = errors.New("nar: truncated archive")
)

// FormatError locates the first violation of the NAR grammar.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("nar: malformed archive at byte %d: %s", e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrFormat) true.
func (e *FormatError) Unwrap() error { return ErrFormat }

const (
	maxToken    = 4096 // any string but file contents
	maxName     = 255
	maxTarget   = 4095
	maxDepth    = 256
	magicString = "nix-archive-1"
)

// Validator checks a NAR written to it. The zero value is not usable; call NewValidator.
type Validator struct {
	off  int64
	err  error
	done bool

	// The string being read: 8-byte little-endian length, body, zero padding.
	lenBuf   [8]byte
	lenN     int
	inBody   bool
	bodyLen  uint64
	bodyRead uint64
	padLeft  int
	stream   bool   // file contents: not buffered
	maxLen   uint64 // for buffered strings
	buf      []byte

	want func(tok []byte) error // what the next complete string must be
	dirs []string               // previous entry name of each open directory
}

// NewValidator returns a validator expecting the NAR magic.
func NewValidator() *Validator {
	v := &Validator{maxLen: maxToken, buf: make([]byte, 0, 64)}
	v.want = v.expect(magicString, v.startNode)
	return v
}

// Size is the number of bytes accepted so far.
func (v *Validator) Size() int64 { return v.off }

// Close reports whether a complete archive was written.
func (v *Validator) Close() error {
	if v.err != nil {
		return v.err
	}
	if !v.done {
		return fmt.Errorf("%w after %d bytes", ErrTruncated, v.off)
	}
	return nil
}

func (v *Validator) fail(format string, args ...any) error {
	v.err = &FormatError{Offset: v.off, Reason: fmt.Sprintf(format, args...)}
	return v.err
}

// Write consumes p, returning the first violation found.
func (v *Validator) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	total := len(p)
	for len(p) > 0 {
		if v.done {
			return total - len(p), v.fail("data after the end of the archive")
		}
		switch {
		case !v.inBody:
			n := copy(v.lenBuf[v.lenN:], p)
			v.lenN += n
			v.off += int64(n)
			p = p[n:]
			if v.lenN == 8 {
				if err := v.beginString(binary.LittleEndian.Uint64(v.lenBuf[:])); err != nil {
					return total - len(p), err
				}
			}
		case v.bodyRead < v.bodyLen:
			n := int(min(uint64(len(p)), v.bodyLen-v.bodyRead))
			if !v.stream {
				v.buf = append(v.buf, p[:n]...)
			}
			v.bodyRead += uint64(n)
			v.off += int64(n)
			p = p[n:]
			if v.bodyRead == v.bodyLen && v.padLeft == 0 {
				if err := v.endString(); err != nil {
					return total - len(p), err
				}
			}
		default:
			n := min(len(p), v.padLeft)
			for i := range n {
				if p[i] != 0 {
					v.off += int64(i)
					return total - len(p), v.fail("non-zero padding")
				}
			}
			v.padLeft -= n
			v.off += int64(n)
			p = p[n:]
			if v.padLeft == 0 {
				if err := v.endString(); err != nil {
					return total - len(p), err
				}
			}
		}
	}
	return total, nil
}

func (v *Validator) beginString(n uint64) error {
	if !v.stream && n > v.maxLen {
		return v.fail("string of %d bytes where at most %d are allowed", n, v.maxLen)
	}
	v.inBody, v.bodyLen, v.bodyRead = true, n, 0
	v.padLeft = int((8 - n%8) % 8)
	v.buf = v.buf[:0]
	if n == 0 {
		return v.endString()
	}
	return nil
}

func (v *Validator) endString() error {
	v.inBody, v.lenN = false, 0
	want := v.want
	v.maxLen = maxToken
	return want(v.buf)
}

// expect returns a handler that requires the literal s, then runs next.
func (v *Validator) expect(s string, next func() error) func([]byte) error {
	return func(tok []byte) error {
		if string(tok) != s {
			return v.fail("expected %q, got %q", s, printable(tok))
		}
		return next()
	}
}

func printable(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
