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
		{"br", ""}, {"lz4", ""}, {"lzip", ""}, {"lzma", ""}, {"grzip", ""}, {"compress", ""},
		{"XZ", ""}, {"zst", ""}, {"", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKind(tc.name)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseKind(%q) = %q, %v", tc.name, got, err)
				}
				return
			}
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "supported: none, xz, bzip2, gzip, zstd") {
				t.Fatalf("ParseKind(%q) = %v, want ErrUnsupported listing the supported kinds", tc.name, err)
			}
			if tc.name != "" && !strings.Contains(err.Error(), `"`+tc.name+`"`) {
				t.Fatalf("error %q does not name %q", err, tc.name)
			}
		})
	}
	_, err := ParseKind("br")
	if want := `nixcompress: unsupported compression "br" (supported: none, xz, bzip2, gzip, zstd)`; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

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
		{"lz4", "\x04\x22\x4d\x18\x64\x40", "", `"lz4"`},
		{"lzip", "LZIP\x01", "", `"lzip"`},
		{"lzma", "\x5d\x00\x00\x80\x00", "", `"lzma"`},
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
