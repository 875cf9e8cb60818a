package narinfo

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixhash"

	"github.com/garret-cache/garret/internal/nixid"
)

// MaxSize is the largest narinfo Parse reads, in bytes.
const MaxSize = 1 << 20

// ErrInvalid wraps every Parse failure but read errors.
var ErrInvalid = errors.New("narinfo: invalid")

// Parse reads a narinfo the way Nix's NarInfo constructor does: "Key: value"
// lines, unknown keys ignored, the value being everything after the first
// ": " (or ":"), Compression defaulting to "bzip2". Where Nix is strict it is
// strict too: StorePath (an absolute store path), URL, NarHash and a non-zero
// NarSize are required; numbers, hashes and store path names must be valid;
// a non-empty line without ':' is an error. Empty lines and trailing '\r's
// are ignored; Sig lines accumulate (empty and repeated ones dropped); for
// other repeated keys the last wins. At most MaxSize bytes are read.
func Parse(r io.Reader) (*NarInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("narinfo: reading: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	ni := &NarInfo{References: []string{}}
	sigs := map[string]bool{} // a set: Contains on Sigs would be quadratic in the line count
	var haveHash bool
	lineNo := 0
	for line := range strings.Lines(string(data)) {
		lineNo++
		line = strings.TrimRight(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: expecting ':' in %q", ErrInvalid, lineNo, shorten(line))
		}
		value = strings.TrimPrefix(value, " ")
		if key == "Sig" {
			if value != "" && !sigs[value] {
				sigs[value] = true
				ni.Sigs = append(ni.Sigs, value)
			}
			continue
		}
		if err := ni.set(key, value); err != nil {
			return nil, fmt.Errorf("%w: line %d: %s: %w", ErrInvalid, lineNo, key, err)
		}
		haveHash = haveHash || key == "NarHash"
	}
	switch {
	case ni.StorePath == "":
		return nil, fmt.Errorf("%w: StorePath missing", ErrInvalid)
	case !haveHash:
		return nil, fmt.Errorf("%w: NarHash missing", ErrInvalid)
	case ni.URL == "":
		return nil, fmt.Errorf("%w: URL missing", ErrInvalid)
	case ni.NarSize == 0:
		return nil, fmt.Errorf("%w: NarSize missing or zero", ErrInvalid)
	}
	if ni.Compression == "" {
		ni.Compression = "bzip2"
	}
	return ni, nil
}

// set stores one field but Sig; unknown keys are ignored.
func (ni *NarInfo) set(key, value string) error {
	var err error
	switch key {
	case "StorePath":
		if dir, _, _, perr := nixid.SplitStorePath(value); perr != nil {
			err = perr
		} else if dir == "" {
			err = fmt.Errorf("%q is not an absolute store path", value)
		}
		ni.StorePath = value
	case "URL":
		ni.URL = value
	case "Compression":
		ni.Compression = value
	case "FileHash":
		if _, herr := nixhash.ParseAny(value, nil); herr != nil {
			err = fmt.Errorf("bad hash %q: %w", shorten(value), herr)
		}
		ni.FileHash = value
	case "FileSize":
		ni.FileSize, err = strconv.ParseUint(value, 10, 64)
	case "NarHash":
		ni.NarHash, err = nixid.ParseNarHash(value)
	case "NarSize":
		ni.NarSize, err = strconv.ParseUint(value, 10, 64)
	case "References":
		ni.References = strings.Fields(value)
		for _, ref := range ni.References {
			if err = checkBaseName(ref); err != nil {
				break
			}
		}
	case "Deriver":
		ni.Deriver = ""
		if value != "unknown-deriver" {
			err = checkBaseName(value)
			ni.Deriver = value
		}
	case "System":
		ni.System = value
	case "CA":
		ni.CA = value
	}
	return err
}

// checkBaseName accepts "<hash>-<name>" without a directory.
func checkBaseName(s string) error {
	dir, _, _, err := nixid.SplitStorePath(s)
	if err == nil && (dir != "" || strings.Contains(s, "/")) {
		err = fmt.Errorf("%q is not a store path base name", shorten(s))
	}
	return err
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
