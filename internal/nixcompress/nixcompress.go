package nixcompress

import (
	"bytes"
	"errors"
	"fmt"
)

// Kind is a compression Nix can name in a narinfo's Compression field and
// Garret can decode.
type Kind string

// The kinds Garret accepts on upload.
const (
	None  Kind = "none"
	XZ    Kind = "xz"
	Bzip2 Kind = "bzip2"
	Gzip  Kind = "gzip"
	Zstd  Kind = "zstd"
)

// ErrUnsupported wraps every refusal of a compression; the message names it.
var ErrUnsupported = errors.New("nixcompress: unsupported compression")

const supported = "supported: none, xz, bzip2, gzip, zstd"

func unsupported(name string) error {
	return fmt.Errorf("%w %q (%s)", ErrUnsupported, name, supported)
}

// ParseKind maps a narinfo Compression value to a Kind. Names Nix knows but
// Garret cannot decode (br, lz4, lzip, lzma, grzip, compress, …) and unknown
// names give an error wrapping ErrUnsupported that names them. The empty
// string is an error too: Nix's default for a missing Compression line is
// "bzip2", which narinfo.Parse fills in.
func ParseKind(name string) (Kind, error) {
	switch Kind(name) {
	case None, XZ, Bzip2, Gzip, Zstd:
		return Kind(name), nil
	case "":
		return "", fmt.Errorf("%w: empty name (%s)", ErrUnsupported, supported)
	}
	return "", unsupported(name)
}

// narMagic starts every uncompressed NAR: the length-prefixed "nix-archive-1".
var narMagic = append([]byte{13, 0, 0, 0, 0, 0, 0, 0}, "nix-archive-1"...)

// magics maps leading bytes to the compression they announce; an empty Kind
// marks a compression Garret recognises but cannot decode.
var magics = []struct {
	magic []byte
	kind  Kind
	name  string
}{
	{[]byte{0xFD, '7', 'z', 'X', 'Z', 0x00}, XZ, "xz"},
	{[]byte{0x28, 0xB5, 0x2F, 0xFD}, Zstd, "zstd"},
	{[]byte("BZh"), Bzip2, "bzip2"},
	{[]byte{0x1F, 0x8B}, Gzip, "gzip"},
	{[]byte{0x04, 0x22, 0x4D, 0x18}, "", "lz4"},
	{[]byte("LZIP"), "", "lzip"},
	{[]byte{0x5D, 0x00, 0x00}, "", "lzma"}, // .lzma ("alone") with the usual lc/lp/pb
}

// Sniff identifies the compression of a body from its first bytes (up to 16
// are looked at; pass what is available). A NAR magic gives None: all of its
// first 8 bytes and as much of the rest as prefix holds must match. xz, zstd,
// bzip2 and gzip magics give their Kind. lz4, lzip and lzma magics, and
// anything else, give an error wrapping ErrUnsupported; for unknown data the
// message shows the first bytes in hex. zstd streams starting with a
// skippable frame are not recognised (Nix never writes one first).
func Sniff(prefix []byte) (Kind, error) {
	prefix = prefix[:min(len(prefix), 16)]
	if len(prefix) >= 8 && bytes.HasPrefix(narMagic, prefix) {
		return None, nil
	}
	for _, m := range magics {
		if !bytes.HasPrefix(prefix, m.magic) {
			continue
		}
		if m.kind == "" {
			return "", unsupported(m.name)
		}
		return m.kind, nil
	}
	if len(prefix) == 0 {
		return "", fmt.Errorf("%w: empty body", ErrUnsupported)
	}
	return "", fmt.Errorf("%w: unknown compression (first bytes %x; %s)", ErrUnsupported, prefix, supported)
}
