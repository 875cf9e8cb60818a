package narinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/garret-cache/garret/internal/nixid"
)

// MaxSize is the largest narinfo Parse reads.
const MaxSize = 1 << 20

// ErrInvalid wraps every parse failure.
var ErrInvalid = errors.New("narinfo: invalid")

// NarInfo is the content of a .narinfo file.
type NarInfo struct {
	StorePath, URL, Compression, FileHash string
	FileSize                              uint64
	NarHash                               nixid.NarHash
	NarSize                               uint64
	References                            []string // base names
	Deriver, System, CA                   string
	Sigs                                  []string
}

// Parse reads a narinfo like Nix does: "Key: value" lines, unknown keys
// ignored, Compression defaulting to bzip2. StorePath, URL, NarHash and
// NarSize are required.
func Parse(r io.Reader) (*NarInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	ni := &NarInfo{References: []string{}}
	var haveHash, haveSize bool
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 4096), MaxSize)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		key, value, ok := strings.Cut(text, ":")
		if !ok {
			continue
		}
		value = strings.TrimPrefix(value, " ")
		bad := func(err error) error { return fmt.Errorf("%w: line %d (%s): %v", ErrInvalid, line, key, err) }
		switch key {
		case "StorePath":
			if _, _, _, err := nixid.SplitStorePath(value); err != nil || !strings.HasPrefix(value, "/") {
				return nil, bad(fmt.Errorf("not a store path: %q", value))
			}
			ni.StorePath = value
		case "URL":
			ni.URL = value
		case "Compression":
			ni.Compression = value
		case "FileHash":
			ni.FileHash = value
		case "FileSize":
			if ni.FileSize, err = strconv.ParseUint(value, 10, 64); err != nil {
				return nil, bad(err)
			}
		case "NarHash":
			if ni.NarHash, err = nixid.ParseNarHash(value); err != nil {
				return nil, bad(err)
			}
			haveHash = true
		case "NarSize":
			if ni.NarSize, err = strconv.ParseUint(value, 10, 64); err != nil {
				return nil, bad(err)
			}
			haveSize = true
		case "References":
			ni.References = strings.Fields(value)
		case "Deriver":
			if value != "unknown-deriver" {
				ni.Deriver = value
			}
		case "System":
			ni.System = value
		case "Sig":
			if value != "" { // an empty signature signs nothing
				ni.Sigs = append(ni.Sigs, value)
			}
		case "CA":
			ni.CA = value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case ni.StorePath == "":
		return nil, fmt.Errorf("%w: missing StorePath", ErrInvalid)
	case ni.URL == "":
		return nil, fmt.Errorf("%w: missing URL", ErrInvalid)
	case !haveHash:
		return nil, fmt.Errorf("%w: missing NarHash", ErrInvalid)
	case !haveSize:
		return nil, fmt.Errorf("%w: missing NarSize", ErrInvalid)
	}
	if ni.Compression == "" {
		ni.Compression = "bzip2"
	}
	return ni, nil
}

// String renders the narinfo in Nix's field order.
func (n *NarInfo) String() string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + v + "\n")
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

// Fingerprint is what a narinfo signature covers:
// 1;<storePath>;sha256:<nix32>;<narSize>;<comma-separated full reference paths>.
func Fingerprint(storePath string, narHash nixid.NarHash, narSize uint64, references []string) string {
	dir := path.Dir(storePath)
	full := make([]string, len(references))
	for i, r := range references {
		full[i] = dir + "/" + r
	}
	return "1;" + storePath + ";" + narHash.String() + ";" + strconv.FormatUint(narSize, 10) + ";" + strings.Join(full, ",")
}
