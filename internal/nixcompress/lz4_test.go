package nixcompress

import "testing"

func TestXXH32_Vectors(t *testing.T) {
	for in, want := range map[string]uint32{"": 0x02CC5D05, "a": 0x550D7456, "abc": 0x32D153FF} {
		if got := xxh32Sum([]byte(in)); got != want {
			t.Errorf("xxh32(%q) = %08x, want %08x", in, got, want)
		}
	}
	// Written in pieces of every size from 1 to 40, the hash is the same.
	p := payload()[:1000]
	want := xxh32Sum(p)
	for step := 1; step <= 40; step++ {
		h := newXXH32()
		for rest := p; len(rest) > 0; {
			n := min(step, len(rest))
			h.Write(rest[:n])
			rest = rest[n:]
		}
		if got := h.Sum32(); got != want {
			t.Fatalf("written %d bytes at a time: %08x, want %08x", step, got, want)
		}
	}
}
