package nixcompress

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// bz2Hello is `printf 'hello hello hello\n' | bzip2 | base64`.
const bz2Hello = "QlpoOTFBWSZTWeW18wkAAARRAAAQQAACRKAAIbUYDAKQacKjC7kinChIctr5hIA="

func TestRoundTrip(t *testing.T) {
	plain := bytes.Repeat([]byte("hello hello hello\n"), 1)
	enc := map[Kind]func([]byte) []byte{
		None: func(b []byte) []byte { return b },
		Zstd: func(b []byte) []byte { w, _ := zstd.NewWriter(nil); return w.EncodeAll(b, nil) },
		XZ: func(b []byte) []byte {
			var buf bytes.Buffer
			w, _ := xz.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		Gzip: func(b []byte) []byte {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		Bzip2: func([]byte) []byte { b, _ := base64.StdEncoding.DecodeString(bz2Hello); return b },
	}
	for k, f := range enc {
		data := f(plain)
		if k == None {
			data = append(append([]byte{}, narMagic...), plain...)
		}
		got, err := Sniff(data[:min(16, len(data))])
		if err != nil || got != k {
			t.Fatalf("%s: sniffed %q, %v", k, got, err)
		}
		r, err := NewReader(k, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		want := plain
		if k == None {
			want = data
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("%s: got %q", k, out)
		}
		// Truncated input is an error, not a short success.
		if k != None {
			r, err := NewReader(k, bytes.NewReader(data[:len(data)-4]))
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if err == nil {
				t.Fatalf("%s: truncated stream accepted", k)
			}
		}
	}
}

func TestParseKindAndSniff_Unsupported(t *testing.T) {
	for _, n := range []string{"br", "lz4", "lzip", "", "zip"} {
		if _, err := ParseKind(n); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ParseKind(%q) = %v", n, err)
		}
	}
	for _, p := range [][]byte{{0x04, 0x22, 0x4D, 0x18}, []byte("LZIP"), []byte("plain text!")} {
		if _, err := Sniff(p); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Sniff(%q) = %v", p, err)
		}
	}
}
