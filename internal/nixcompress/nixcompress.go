package nixcompress

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Kind is a compression Nix can put in a narinfo's Compression field.
type Kind string

// The kinds Garret accepts on upload.
const (
	None  Kind = "none"
	XZ    Kind = "xz"
	Bzip2 Kind = "bzip2"
	Gzip  Kind = "gzip"
	Zstd  Kind = "zstd"
)

// ErrUnsupported wraps every refusal; its message names the compression.
var ErrUnsupported = errors.New("nixcompress: unsupported compression")

const supported = "none, xz, bzip2, gzip, zstd"

// ParseKind maps a narinfo Compression value to a Kind.
func ParseKind(name string) (Kind, error) {
	switch Kind(name) {
	case None, XZ, Bzip2, Gzip, Zstd:
		return Kind(name), nil
	}
	return "", fmt.Errorf("%w %q (supported: %s)", ErrUnsupported, name, supported)
}

var narMagic = append([]byte{13, 0, 0, 0, 0, 0, 0, 0}, "nix-archive-1"...)

// Sniff identifies the compression from the first bytes of a body.
func Sniff(prefix []byte) (Kind, error) {
	switch {
	case bytes.HasPrefix(narMagic, prefix[:min(len(prefix), len(narMagic))]) && len(prefix) >= 8:
		return None, nil
	case bytes.HasPrefix(prefix, []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}):
		return XZ, nil
	case bytes.HasPrefix(prefix, []byte{0x28, 0xB5, 0x2F, 0xFD}):
		return Zstd, nil
	case bytes.HasPrefix(prefix, []byte("BZh")):
		return Bzip2, nil
	case bytes.HasPrefix(prefix, []byte{0x1F, 0x8B}):
		return Gzip, nil
	case bytes.HasPrefix(prefix, []byte{0x04, 0x22, 0x4D, 0x18}):
		return "", fmt.Errorf("%w \"lz4\" (supported: %s)", ErrUnsupported, supported)
	case bytes.HasPrefix(prefix, []byte("LZIP")):
		return "", fmt.Errorf("%w \"lzip\" (supported: %s)", ErrUnsupported, supported)
	}
	return "", fmt.Errorf("%w: unknown format (first bytes %s; supported: %s)", ErrUnsupported, hex.EncodeToString(prefix[:min(len(prefix), 8)]), supported)
}

// NewReader returns a streaming decompressor. Corrupt or truncated input
// makes Read fail; it never ends silently early.
func NewReader(k Kind, r io.Reader) (io.ReadCloser, error) {
	switch k {
	case None:
		return io.NopCloser(r), nil
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("nixcompress: zstd: %w", err)
		}
		return d.IOReadCloser(), nil
	case XZ:
		d, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("nixcompress: xz: %w", err)
		}
		return io.NopCloser(d), nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case Gzip:
		d, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("nixcompress: gzip: %w", err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupported, k)
}
