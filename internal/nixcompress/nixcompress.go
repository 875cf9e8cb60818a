package nixcompress

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ulikunitz/xz/lzma"
)

// Kind is a compression Nix can name in a narinfo's Compression field and
// Garret can decode.
type Kind string

// The kinds Garret accepts on upload: every compression `nix copy` can write
// without an external program.
const (
	None     Kind = "none"
	XZ       Kind = "xz"
	Bzip2    Kind = "bzip2"
	Gzip     Kind = "gzip"
	Zstd     Kind = "zstd"
	Brotli   Kind = "br"
	LZ4      Kind = "lz4"
	Lzip     Kind = "lzip"
	LZMA     Kind = "lzma"
	Compress Kind = "compress"
)

// ErrUnsupported wraps every refusal of a compression; the message names it.
var ErrUnsupported = errors.New("nixcompress: unsupported compression")

// ErrMismatch wraps Detect's refusal of a body that does not carry the magic
// of the compression its file name or narinfo announces.
var ErrMismatch = errors.New("nixcompress: body does not match its announced compression")

const supported = "supported: none, xz, bzip2, gzip, zstd, br, lz4, lzip, lzma, compress"

func unsupported(name string) error {
	switch name {
	case "lzop", "grzip", "lrzip":
		return fmt.Errorf("%w %q (Nix needs the external %s program for it; %s)", ErrUnsupported, name, name, supported)
	}
	return fmt.Errorf("%w %q (%s)", ErrUnsupported, name, supported)
}

// ParseKind maps a narinfo Compression value to a Kind. Names Nix knows but
// Garret cannot decode (lzop, grzip, lrzip: Nix itself can only write them
// with external programs) and unknown names give an error wrapping
// ErrUnsupported that names them. The empty string is an error too: Nix's
// default for a missing Compression line is "bzip2", which narinfo.Parse
// fills in.
func ParseKind(name string) (Kind, error) {
	switch Kind(name) {
	case None, XZ, Bzip2, Gzip, Zstd, Brotli, LZ4, Lzip, LZMA, Compress:
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
	{[]byte{0x04, 0x22, 0x4D, 0x18}, LZ4, "lz4"},
	{[]byte("LZIP"), Lzip, "lzip"},
	{[]byte{0x1F, 0x9D}, Compress, "compress"},
	{[]byte{0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1A, '\n'}, "", "lzop"},
	{[]byte("LRZI"), "", "lrzip"},
	{[]byte("GRZipII\x00\x02\x04:)"), "", "grzip"},
}

// Sniff identifies the compression of a body from its first bytes (up to 16
// are looked at; pass what is available). A NAR magic gives None: all of its
// first 8 bytes and as much of the rest as prefix holds must match. The
// magics of xz, zstd, bzip2, gzip, lz4, lzip and compress give their Kind; a
// .lzma header (13 bytes: properties under 225, a dictionary size of 2^n or
// 2^n+2^(n-1) bytes, an unknown size or one of at most 256 GiB, about as liblzma
// checks) gives LZMA. lzop, lrzip and grzip magics, and anything else, give
// an error wrapping ErrUnsupported; for unknown data the message shows the
// first bytes in hex. Brotli has no magic, so Sniff cannot see it: callers
// that know a body is Brotli use Detect. zstd and lz4 streams starting with
// a skippable frame are not recognised (Nix never writes one first).
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
	if len(prefix) >= lzma.HeaderLen && lzma.ValidHeader(prefix[:lzma.HeaderLen]) {
		return LZMA, nil
	}
	if len(prefix) == 0 {
		return "", fmt.Errorf("%w: empty body", ErrUnsupported)
	}
	return "", fmt.Errorf("%w: unknown compression (first bytes %x; %s)", ErrUnsupported, prefix, supported)
}

// Detect identifies the compression of a body from its first bytes (as for
// Sniff) and the kind the caller was told: hint comes from the upload's file
// name (nar/….nar.br) or a narinfo's Compression, and is "" when nothing was
// said (a plain .nar name may hold none, gzip, lzma or compress). With no
// hint Detect is Sniff. A hint Garret cannot decode is an error wrapping
// ErrUnsupported. Otherwise the body must start the way the hinted kind
// does (a NAR header for none, the magic bytes or .lzma header Sniff looks
// for), or the error wraps ErrMismatch and names both. Brotli has no magic:
// for br the hint is trusted, and NewReader fails on a body that is not
// Brotli.
func Detect(prefix []byte, hint Kind) (Kind, error) {
	if hint == "" {
		return Sniff(prefix)
	}
	if _, err := ParseKind(string(hint)); err != nil {
		return "", err
	}
	if len(prefix) == 0 {
		return "", fmt.Errorf("%w: empty body", ErrUnsupported)
	}
	if hint == Brotli {
		return Brotli, nil
	}
	got, err := Sniff(prefix)
	switch {
	case err == nil && got == hint:
		return got, nil
	case err == nil:
		return "", fmt.Errorf("%w: announced as %s but the body is %s", ErrMismatch, hint, got)
	}
	prefix = prefix[:min(len(prefix), 16)]
	return "", fmt.Errorf("%w: announced as %s but the body does not start like it (first bytes %x)", ErrMismatch, hint, prefix)
}
