package narinfo

import (
	"slices"
	"strconv"
	"strings"

	"github.com/garret-cache/garret/internal/nixid"
)

// NarInfo is the content of a .narinfo file.
type NarInfo struct {
	StorePath   string // full store path, e.g. /nix/store/<hash>-<name>
	URL         string // where the (compressed) NAR is, relative to the cache
	Compression string // "bzip2" when the file had no Compression line
	FileHash    string // hash of the compressed file, as written ("sha256:<nix32>"); not signed
	FileSize    uint64 // size of the compressed file; 0 means unknown; not signed
	NarHash     nixid.NarHash
	NarSize     uint64
	References  []string // store path base names (<hash>-<name>); never nil after Parse
	Deriver     string   // base name; "" for Nix's "unknown-deriver"
	System      string
	CA          string
	Sigs        []string // "keyname:base64(signature)", in file order, without duplicates
}

// String renders n in Nix's field order: StorePath, URL, Compression,
// FileHash, FileSize, NarHash (sha256:<nix32>), NarSize, References (always
// present, "References: " when empty), Deriver, System, one Sig line per
// signature, CA. Empty optional fields and a zero FileSize are omitted.
func (n *NarInfo) String() string {
	var fileSize string
	if n.FileSize > 0 {
		fileSize = strconv.FormatUint(n.FileSize, 10)
	}
	lines := make([][2]string, 0, 10+len(n.Sigs))
	lines = append(lines, [2]string{"StorePath", n.StorePath}, [2]string{"URL", n.URL},
		[2]string{"Compression", n.Compression}, [2]string{"FileHash", n.FileHash}, [2]string{"FileSize", fileSize},
		[2]string{"NarHash", n.NarHash.String()}, [2]string{"NarSize", strconv.FormatUint(n.NarSize, 10)},
		[2]string{"References", ""}, // written below, even when empty
		[2]string{"Deriver", n.Deriver}, [2]string{"System", n.System})
	for _, s := range n.Sigs {
		lines = append(lines, [2]string{"Sig", s})
	}
	lines = append(lines, [2]string{"CA", n.CA})
	// Sized exactly: the string is what the narinfo cache keeps.
	size := len("References: \n") + max(len(n.References)-1, 0)
	for _, r := range n.References {
		size += len(r)
	}
	for _, l := range lines {
		if l[1] != "" {
			size += len(l[0]) + len(": ") + len(l[1]) + 1
		}
	}
	var b strings.Builder
	b.Grow(size)
	for _, l := range lines {
		switch {
		case l[0] == "References":
			b.WriteString("References: ")
			for i, r := range n.References {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(r)
			}
			b.WriteByte('\n')
		case l[1] != "":
			b.WriteString(l[0])
			b.WriteString(": ")
			b.WriteString(l[1])
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Fingerprint is the string a narinfo signature covers (Nix's
// ValidPathInfo::fingerprint):
//
//	1;<storePath>;sha256:<nix32>;<narSize>;<storeDir/ref>,<storeDir/ref>…
//
// storeDir is the directory part of storePath. References are sorted and
// deduplicated first, because Nix holds them in a sorted set when it checks
// a signature; the caller's slice is not modified.
func Fingerprint(storePath string, narHash nixid.NarHash, narSize uint64, references []string) string {
	storeDir := storePath[:max(strings.LastIndexByte(storePath, '/'), 0)]
	refs := slices.Compact(slices.Sorted(slices.Values(references)))
	var b strings.Builder
	b.WriteString("1;" + storePath + ";" + narHash.String() + ";" + strconv.FormatUint(narSize, 10) + ";")
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(storeDir + "/" + r)
	}
	return b.String()
}
