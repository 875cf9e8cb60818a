package nar

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors. Every *FormatError wraps ErrFormat; Close's error for an
// archive that stops early wraps ErrTruncated.
var (
	ErrFormat    = errors.New("nar: malformed archive")
	ErrTruncated = errors.New("nar: truncated archive")
)

// FormatError locates the first violation of the NAR grammar. Offset is the
// position of the offending string's length prefix, or of the offending byte
// for non-zero padding and for data after the end of the archive.
type FormatError struct {
	Offset int64
	Reason string
}

// Error renders "nar: malformed archive at byte N: reason".
func (e *FormatError) Error() string {
	return fmt.Sprintf("%v at byte %d: %s", ErrFormat, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrFormat) true.
func (e *FormatError) Unwrap() error { return ErrFormat }

// Limits on the archive's shape.
const (
	maxToken  = 4096 // any string but file contents
	maxName   = 255
	maxTarget = 4095
	maxDepth  = 256
)

// Validator checks a NAR written to it; Close tells whether it was complete.
// It is not safe for concurrent use. The zero value is not usable; call
// NewValidator.
type Validator struct {
	off int64 // bytes consumed
	err error // first violation, returned forever after

	st state

	// Framing of the string being read: 8-byte length, body, padding.
	lenBuf   [8]byte
	lenN     int
	inBody   bool   // the length is complete; reading body then padding
	tokStart int64  // offset of the current string's length prefix
	bodyLen  uint64 // declared length
	bodyRead uint64
	padLeft  int
	tok      [maxToken]byte // body of a non-contents string

	// prev[d] is the last entry name seen in the directory at depth d+1;
	// len(prev) is the number of open directories.
	prev [][]byte
	// pool keeps the name buffers of closed directories for reuse.
	pool [][]byte
}

// NewValidator returns a validator expecting the NAR magic.
func NewValidator() *Validator { return &Validator{st: stMagic} }

// Size is the number of bytes accepted so far.
func (v *Validator) Size() int64 { return v.off }

// Close returns nil only if a complete archive was written: the first
// violation if there was one, otherwise an error wrapping ErrTruncated that
// says where the archive stopped. It does not change the validator's state.
func (v *Validator) Close() error {
	switch {
	case v.err != nil:
		return v.err
	case v.st != stDone:
		return fmt.Errorf("%w: ended after %d bytes %s", ErrTruncated, v.off, v.position())
	}
	return nil
}

// Write consumes p. On the first violation it returns a *FormatError, and
// every later Write returns the same error; n counts the bytes consumed
// before the violation was detected.
func (v *Validator) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	total := len(p)
	for len(p) > 0 {
		var n int
		var err error
		switch {
		case v.st == stDone:
			err = v.fail(v.off, "data after the end of the archive")
		case !v.inBody:
			n, err = v.readLength(p)
		case v.bodyRead < v.bodyLen:
			n, err = v.readBody(p)
		default:
			n, err = v.readPadding(p)
		}
		p = p[n:]
		if err != nil {
			return total - len(p), err
		}
	}
	return total, nil
}

func (v *Validator) readLength(p []byte) (int, error) {
	if v.lenN == 0 {
		v.tokStart = v.off
	}
	n := copy(v.lenBuf[v.lenN:], p)
	v.lenN += n
	v.off += int64(n)
	if v.lenN < len(v.lenBuf) {
		return n, nil
	}
	size := binary.LittleEndian.Uint64(v.lenBuf[:])
	if limit, what := v.st.limit(); size > limit {
		return n, v.fail(v.tokStart, "%s of %d bytes exceeds the limit of %d", what, size, limit)
	}
	v.inBody, v.bodyLen, v.bodyRead = true, size, 0
	v.padLeft = int((8 - size%8) % 8)
	if size == 0 {
		return n, v.endString()
	}
	return n, nil
}

func (v *Validator) readBody(p []byte) (int, error) {
	n := int(min(uint64(len(p)), v.bodyLen-v.bodyRead))
	if v.st != stContents {
		copy(v.tok[v.bodyRead:], p[:n])
	}
	v.bodyRead += uint64(n)
	v.off += int64(n)
	if v.bodyRead == v.bodyLen && v.padLeft == 0 {
		return n, v.endString()
	}
	return n, nil
}

func (v *Validator) readPadding(p []byte) (int, error) {
	n := min(len(p), v.padLeft)
	for i, b := range p[:n] {
		if b != 0 {
			v.off += int64(i)
			return i, v.fail(v.off, "non-zero padding byte 0x%02x after %s", b, v.st.noun())
		}
	}
	v.padLeft -= n
	v.off += int64(n)
	if v.padLeft == 0 {
		return n, v.endString()
	}
	return n, nil
}

// endString hands a complete string to the grammar and resets the framing.
func (v *Validator) endString() error {
	v.inBody, v.lenN = false, 0
	var tok []byte
	if v.st != stContents {
		tok = v.tok[:v.bodyLen]
	}
	return v.token(tok)
}

func (v *Validator) fail(off int64, format string, args ...any) error {
	v.err = &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
	return v.err
}

// position describes where a truncated archive stopped, for Close.
func (v *Validator) position() string {
	switch {
	case !v.inBody && v.lenN == 0:
		return "while expecting " + v.st.expected()
	case !v.inBody:
		return fmt.Sprintf("inside the length of %s", v.st.noun())
	case v.bodyRead < v.bodyLen:
		return fmt.Sprintf("inside %s (%d of %d bytes)", v.st.noun(), v.bodyRead, v.bodyLen)
	}
	return fmt.Sprintf("inside the padding of %s", v.st.noun())
}
