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
	var b strings.Builder
	line := func(key, value string) {
		if value != "" {
			b.WriteString(key + ": " + value + "\n")
		}
	}
	line("StorePath", n.StorePath)
	line("URL", n.URL)
	line("Compression", n.Compression)
	line("FileHash", n.FileHash)
	if n.FileSize > 0 {
		line("FileSize", strconv.FormatUint(n.FileSize, 10))
	}
	line("NarHash", n.NarHash.String())
	line("NarSize", strconv.FormatUint(n.NarSize, 10))
	b.WriteString("References: " + strings.Join(n.References, " ") + "\n")
	line("Deriver", n.Deriver)
	line("System", n.System)
	for _, s := range n.Sigs {
		line("Sig", s)
	}
	line("CA", n.CA)
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
