package nixdaemon

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Nix's wire format: integers are little-endian u64s; strings are a u64
// length, the bytes, and zero padding to a multiple of 8; lists and sets are a
// u64 count followed by the elements.

// Caps on what is read off the wire.
const (
	maxPath     = 4096    // a store path (store dir, hash, name)
	maxHash     = 256     // a NAR hash in any of Nix's renderings
	maxSig      = 4096    // one signature, "name:base64"
	maxCA       = 4096    // a content address, "fixed:r:sha256:…"
	maxRefs     = 1 << 16 // references of one path
	maxSigs     = 1024    // signatures of one path
	maxMessage  = 1 << 20 // a log line, an error message, an activity's text
	maxSmall    = 1024    // a version string, feature name, error type
	maxSmallSet = 1024    // features, traces, activity fields
)

// ErrClosed is returned (wrapped) when the daemon hangs up mid-conversation.
var ErrClosed = errors.New("nix-daemon closed the connection")

// wire reads and writes Nix's framing over buffered streams.
type wire struct {
	r *bufio.Reader
	w *bufio.Writer
}

func readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = ErrClosed
	}
	return fmt.Errorf("nixdaemon: reading %s: %w", what, err)
}

func (c *wire) u64(what string) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return 0, readErr(what, err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (c *wire) bool(what string) (bool, error) {
	n, err := c.u64(what)
	if err == nil && n > 1 {
		err = fmt.Errorf("nixdaemon: reading %s: %d is not a boolean", what, n)
	}
	return n == 1, err
}

// count reads a list length and checks it against max before anything is
// allocated for the elements.
func (c *wire) count(what string, max uint64) (int, error) {
	n, err := c.u64(what + " count")
	if err == nil && n > max {
		err = fmt.Errorf("nixdaemon: reading %s: %d entries, over the limit of %d", what, n, max)
	}
	return int(n), err
}

func padding(n uint64) uint64 { return (8 - n%8) % 8 }

// bytes reads a string of at most max bytes.
func (c *wire) bytes(what string, max uint64) ([]byte, error) {
	n, err := c.u64(what + " length")
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("nixdaemon: reading %s: %d bytes, over the limit of %d", what, n, max)
	}
	buf := make([]byte, n+padding(n))
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, readErr(what, err)
	}
	for _, b := range buf[n:] {
		if b != 0 {
			return nil, fmt.Errorf("nixdaemon: reading %s: non-zero padding", what)
		}
	}
	return buf[:n], nil
}

func (c *wire) string(what string, max uint64) (string, error) {
	b, err := c.bytes(what, max)
	return string(b), err
}

// strings reads a list of at most maxN strings of at most maxLen bytes each.
// Capacity grows with what actually arrives, not with the announced count.
func (c *wire) strings(what string, maxN, maxLen uint64) ([]string, error) {
	n, err := c.count(what, maxN)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, min(n, 64))
	for i := range n {
		s, err := c.string(fmt.Sprintf("%s[%d]", what, i), maxLen)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// skip reads and drops a string of at most max bytes without keeping it.
func (c *wire) skip(what string, max uint64) error {
	n, err := c.u64(what + " length")
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("nixdaemon: reading %s: %d bytes, over the limit of %d", what, n, max)
	}
	if _, err := c.r.Discard(int(n + padding(n))); err != nil {
		return readErr(what, err)
	}
	return nil
}

func (c *wire) putU64(n uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	_, _ = c.w.Write(b[:]) // a write error sticks in the bufio.Writer; flush reports it
}

func (c *wire) putString(s string) {
	c.putU64(uint64(len(s)))
	_, _ = c.w.WriteString(s)
	var zero [8]byte
	_, _ = c.w.Write(zero[:padding(uint64(len(s)))])
}

func (c *wire) putStrings(ss []string) {
	c.putU64(uint64(len(ss)))
	for _, s := range ss {
		c.putString(s)
	}
}

func (c *wire) flush() error {
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("nixdaemon: writing: %w: %v", ErrClosed, err)
	}
	return nil
}
