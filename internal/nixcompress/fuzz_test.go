package nixcompress

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzKinds are the kinds FuzzNewReader decodes; the first input byte picks one.
var fuzzKinds = []Kind{XZ, Bzip2, Gzip, Zstd, Brotli, LZ4, Lzip, LZMA, Compress}

// FuzzNewReader decodes arbitrary bytes as every kind: no panic, output
// bounded (it stops reading at 64 MiB), and no error that is or wraps a
// plain io.EOF, which a caller would take for a clean end.
func FuzzNewReader(f *testing.F) {
	for i, k := range fuzzKinds {
		if name, ok := nixFiles[k]; ok {
			f.Add(append([]byte{byte(i)}, fixture(f, name)...))
		}
	}
	f.Add(append([]byte{byte(6)}, fixture(f, "hello.lz")...))
	f.Add(append([]byte{byte(5)}, fixture(f, "linked.lz4")[:600]...))
	f.Add(append([]byte{byte(8)}, fixture(f, "payload40k-b10.Z")[:2000]...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		k := fuzzKinds[int(in[0])%len(fuzzKinds)]
		body := in[1:]
		_, _ = Sniff(body)
		_, _ = Detect(body, k)
		r, err := NewReader(k, bytes.NewReader(body))
		if err != nil {
			if errors.Is(err, io.EOF) {
				t.Fatalf("%s: NewReader error %v is io.EOF", k, err)
			}
			return
		}
		defer r.Close()
		_, err = io.Copy(io.Discard, io.LimitReader(r, 64<<20))
		if err != nil && errors.Is(err, io.EOF) {
			t.Fatalf("%s: read error %v is io.EOF", k, err)
		}
	})
}
