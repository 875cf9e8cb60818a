package nixcompress

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKind_Names(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Kind // "" → unsupported
	}{
		{"none", None}, {"xz", XZ}, {"bzip2", Bzip2}, {"gzip", Gzip}, {"zstd", Zstd},
		{"br", Brotli}, {"lz4", LZ4}, {"lzip", Lzip}, {"lzma", LZMA}, {"compress", Compress},
		{"lzop", ""}, {"grzip", ""}, {"lrzip", ""},
		{"XZ", ""}, {"zst", ""}, {"brotli", ""}, {"Z", ""}, {"", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKind(tc.name)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseKind(%q) = %q, %v", tc.name, got, err)
				}
				return
			}
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "supported: none, xz, bzip2, gzip, zstd, br, lz4, lzip, lzma, compress") {
				t.Fatalf("ParseKind(%q) = %v, want ErrUnsupported listing the supported kinds", tc.name, err)
			}
			if tc.name != "" && !strings.Contains(err.Error(), `"`+tc.name+`"`) {
				t.Fatalf("error %q does not name %q", err, tc.name)
			}
		})
	}
	_, err := ParseKind("zst")
	if want := `nixcompress: unsupported compression "zst" (supported: none, xz, bzip2, gzip, zstd, br, lz4, lzip, lzma, compress)`; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	_, err = ParseKind("lzop")
	if want := `nixcompress: unsupported compression "lzop" (Nix needs the external lzop program for it; supported: none, xz, bzip2, gzip, zstd, br, lz4, lzip, lzma, compress)`; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

// lzmaHead is the .lzma header Nix (libarchive) and xz --format=lzma write at
// the default level: lc=3 lp=0 pb=2, an 8 MiB dictionary, unknown size.
const lzmaHead = "\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff"

func TestSniff_Magics(t *testing.T) {
	nar := string(narMagic) + "\x01\x00\x00\x00\x00\x00\x00\x00("
	for _, tc := range []struct {
		name   string
		prefix string
		want   Kind   // "" → error
		errHas string // for errors
	}{
		{"NAR, 16 bytes", nar[:16], None, ""},
		{"NAR, whole header", nar, None, ""},
		{"NAR, 8 bytes", nar[:8], None, ""},
		{"NAR, wrong string", "\x0d\x00\x00\x00\x00\x00\x00\x00nix-arcX", "", "unknown compression"},
		{"NAR, 5 bytes", nar[:5], "", "unknown compression (first bytes 0d00000000;"},
		{"xz", "\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46", XZ, ""},
		{"zstd", "\x28\xb5\x2f\xfd\x00\x58", Zstd, ""},
		{"bzip2", "BZh91AY&SY", Bzip2, ""},
		{"gzip", "\x1f\x8b\x08\x00", Gzip, ""},
		{"lz4", "\x04\x22\x4d\x18\x64\x40", LZ4, ""},
		{"lzip", "LZIP\x01", Lzip, ""},
		{"compress", "\x1f\x9d\x90", Compress, ""},
		{"lzma, as Nix and xz write it", lzmaHead, LZMA, ""},
		{"lzma, other properties, 2^n+2^(n-1) dictionary, known size", "\x00\x00\x00\xc0\x00\x05\x00\x00\x00\x00\x00\x00\x00", LZMA, ""},
		{"lzma, 5 bytes", lzmaHead[:5], "", "unknown compression"},
		{"lzma, odd dictionary size", "\x5d\x01\x00\x80\x00" + lzmaHead[5:], "", "unknown compression"},
		{"lzma, properties byte 225", "\xe1" + lzmaHead[1:], "", "unknown compression"},
		{"lzma, size over 256 GiB", lzmaHead[:5] + "\x01\x00\x00\x00\x40\x00\x00\x00", "", "unknown compression"},
		{"lzop", "\x89LZO\x00\r\n\x1a\n\x10\x30", "", `"lzop" (Nix needs the external lzop program`},
		{"lrzip", "LRZI\x00\x06", "", `"lrzip"`},
		{"grzip", "GRZipII\x00\x02\x04:)\x00", "", `"grzip"`},
		{"brotli or text", "plain text, not a NAR", "", "unknown compression (first bytes 706c61696e20746578742c206e6f7420;"},
		{"empty", "", "", "empty body"},
		{"short gzip", "\x1f", "", "unknown compression (first bytes 1f;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sniff([]byte(tc.prefix))
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("Sniff = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Sniff = %q, %v; want ErrUnsupported containing %q", got, err, tc.errHas)
			}
		})
	}
}

func TestDetect_Hints(t *testing.T) {
	nar := string(narMagic) + "\x01\x00\x00\x00\x00\x00\x00\x00("
	for _, tc := range []struct {
		name   string
		prefix string
		hint   Kind
		want   Kind  // "" → error
		err    error // for errors
		errHas string
	}{
		{"no hint: Sniff", "\xfd7zXZ\x00\x00\x04", "", XZ, nil, ""},
		{"no hint, brotli bytes", "\x1b\x1f\x01\x00\x87\x00\x6f\x9d", "", "", ErrUnsupported, "unknown compression"},
		{"xz as xz", "\xfd7zXZ\x00\x00\x04", XZ, XZ, nil, ""},
		{"NAR as none", nar, None, None, nil, ""},
		{"gzip as gzip", "\x1f\x8b\x08\x00", Gzip, Gzip, nil, ""},
		{"compress as compress", "\x1f\x9d\x90", Compress, Compress, nil, ""},
		{"lzma as lzma", lzmaHead, LZMA, LZMA, nil, ""},
		{"lz4 as lz4", "\x04\x22\x4d\x18\x64\x70", LZ4, LZ4, nil, ""},
		{"lzip as lzip", "LZIP\x01\x17", Lzip, Lzip, nil, ""},
		{"brotli as br: trusted", "\x1b\x1f\x01\x00\x87\x00\x6f\x9d", Brotli, Brotli, nil, ""},
		{"anything as br: trusted", nar, Brotli, Brotli, nil, ""},
		{"zstd as xz", "\x28\xb5\x2f\xfd\x00\x58", XZ, "", ErrMismatch, "announced as xz but the body is zstd"},
		{"compress as gzip", "\x1f\x9d\x90", Gzip, "", ErrMismatch, "announced as gzip but the body is compress"},
		{"NAR as lz4", nar, LZ4, "", ErrMismatch, "announced as lz4 but the body is none"},
		{"text as lzma", "plain text, not lzma", LZMA, "", ErrMismatch, "announced as lzma but the body does not start like it (first bytes 706c61696e20746578742c206e6f7420)"},
		{"lzop bytes as none", "\x89LZO\x00\r\n\x1a\n\x10\x30", None, "", ErrMismatch, "announced as none"},
		{"short lzip", "LZ", Lzip, "", ErrMismatch, "first bytes 4c5a"},
		{"empty body as br", "", Brotli, "", ErrUnsupported, "empty body"},
		{"empty body as xz", "", XZ, "", ErrUnsupported, "empty body"},
		{"lzop hint", "\x89LZO\x00\r\n\x1a\n\x10\x30", "lzop", "", ErrUnsupported, "external lzop program"},
		{"unknown hint", "\xfd7zXZ\x00\x00\x04", "zst", "", ErrUnsupported, `"zst"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect([]byte(tc.prefix), tc.hint)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("Detect = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Detect = %q, %v; want %v containing %q", got, err, tc.err, tc.errHas)
			}
		})
	}
}
