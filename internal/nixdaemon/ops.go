package nixdaemon

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// Worker operations used here (worker-protocol.hh).
const opQueryPathInfo = 26

// PathInfo is a valid store path's metadata, as wopQueryPathInfo returns it.
type PathInfo struct {
	Path    string // "/nix/store/<hash>-<name>"
	Deriver string // the .drv it was built by, or ""
	NarHash nixid.NarHash
	// References are full store paths, possibly including Path itself.
	References       []string
	RegistrationTime time.Time
	NarSize          uint64
	// Ultimate is true when this store built the path (it is trusted without
	// a signature).
	Ultimate bool
	Sigs     []string // "keyname:base64"
	CA       string   // content address ("fixed:r:sha256:…", "text:sha256:…"), or ""
}

// InvalidPathError is returned for a path the daemon's store does not hold
// (not built, substituted or added yet, or garbage-collected).
type InvalidPathError struct{ Path string }

// Error renders "<path> is not a valid path in the Nix store".
func (e *InvalidPathError) Error() string {
	return fmt.Sprintf("nix-daemon: %s is not a valid path in the Nix store (not built or fetched yet?)", e.Path)
}

// call runs one operation: op writes the request, stderrLoop reads the
// daemon's messages, read reads the reply. Errors other than the daemon's own
// (and an invalid path) leave the stream out of step and are sticky.
func (c *Client) call(op func(), read func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	op()
	err := c.stderrLoop()
	if err == nil {
		err = read()
	}
	var de *DaemonError
	var ip *InvalidPathError
	if err != nil && !errors.As(err, &de) && !errors.As(err, &ip) {
		return c.fail(err)
	}
	return err
}

// checkPath validates a full store path ("/nix/store/<hash>-<name>").
func checkPath(p string) error {
	dir, _, _, err := nixid.SplitStorePath(p)
	if err == nil && dir == "" {
		err = fmt.Errorf("%w: %q: not an absolute store path", nixid.ErrInvalidStorePath, p)
	}
	return err
}

// checkRequest validates a path we send: the daemon answers a malformed one,
// or one outside its store, by reporting the error and hanging up.
func (c *Client) checkRequest(p string) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if dir, _, _, _ := nixid.SplitStorePath(p); dir != c.storeDir {
		return fmt.Errorf("%w: %q is not in the Nix store %s", nixid.ErrInvalidStorePath, p, c.storeDir)
	}
	return nil
}

// QueryPathInfo returns path's metadata. A path the store does not hold is
// an *InvalidPathError.
func (c *Client) QueryPathInfo(path string) (*PathInfo, error) {
	if err := c.checkRequest(path); err != nil {
		return nil, err
	}
	var info *PathInfo
	err := c.call(func() {
		c.c.putU64(opQueryPathInfo)
		c.c.putString(path)
	}, func() error {
		// Daemons ≥ 1.17 answer a valid flag; we never speak less than 1.21.
		valid, err := c.c.bool("path validity")
		if err != nil {
			return err
		}
		if !valid {
			return &InvalidPathError{Path: path}
		}
		info, err = c.readPathInfo(path)
		return err
	})
	var de *DaemonError
	if errors.As(err, &de) && strings.Contains(de.Message, "is not valid") {
		// What Nix's own client does with daemons that throw instead.
		return nil, &InvalidPathError{Path: path}
	}
	if err != nil {
		return nil, err
	}
	return info, nil
}

// readPathInfo reads an UnkeyedValidPathInfo: deriver, NAR hash (base16),
// references, registration time, NAR size, then (≥ 1.16) ultimate,
// signatures and content address.
func (c *Client) readPathInfo(path string) (*PathInfo, error) {
	w := &c.c
	in := &PathInfo{Path: path}
	var err error
	if in.Deriver, err = w.string("deriver", maxPath); err != nil {
		return nil, err
	}
	if in.Deriver != "" {
		if err := checkPath(in.Deriver); err != nil {
			return nil, fmt.Errorf("nixdaemon: deriver of %s: %w", path, err)
		}
	}
	h, err := w.string("NAR hash", maxHash)
	if err != nil {
		return nil, err
	}
	if in.NarHash, err = parseNarHash(h); err != nil {
		return nil, fmt.Errorf("nixdaemon: NAR hash of %s: %w", path, err)
	}
	if in.References, err = w.strings("references", maxRefs, maxPath); err != nil {
		return nil, err
	}
	for _, r := range in.References {
		if err := checkPath(r); err != nil {
			return nil, fmt.Errorf("nixdaemon: reference of %s: %w", path, err)
		}
	}
	reg, err := w.u64("registration time")
	if err != nil {
		return nil, err
	}
	if reg > 1<<62 {
		return nil, fmt.Errorf("nixdaemon: registration time of %s: %d is not a time", path, reg)
	}
	in.RegistrationTime = time.Unix(int64(reg), 0).UTC()
	if in.NarSize, err = w.u64("NAR size"); err != nil {
		return nil, err
	}
	if c.minor() >= 16 {
		if in.Ultimate, err = w.bool("ultimate"); err != nil {
			return nil, err
		}
		if in.Sigs, err = w.strings("signatures", maxSigs, maxSig); err != nil {
			return nil, err
		}
		if in.CA, err = w.string("content address", maxCA); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// parseNarHash reads the daemon's NAR hash: bare base16 on the wire, or any
// form nixid accepts ("sha256:…", SRI).
func parseNarHash(s string) (nixid.NarHash, error) {
	if len(s) == 64 {
		var h nixid.NarHash
		if _, err := hex.Decode(h[:], []byte(s)); err != nil {
			return h, fmt.Errorf("%w: %q: %v", nixid.ErrInvalidNarHash, s, err)
		}
		return h, nil
	}
	return nixid.ParseNarHash(s)
}

// Caps on a closure walk: paths, and bytes of metadata kept (references
// are shared with the walk's own set, so each costs a string header).
const (
	MaxClosurePaths = 1 << 20
	MaxClosureBytes = 1 << 29
)

// retained estimates the memory an info keeps beyond its interned references.
func retained(in *PathInfo) int {
	n := 256 + len(in.Path) + len(in.Deriver) + len(in.CA) + 16*len(in.References)
	for _, s := range in.Sigs {
		n += 16 + len(s)
	}
	return n
}

// Closure returns the metadata of every path in the closure of roots (the
// roots and everything they reference, recursively), roots first, then in
// breadth-first order. A root or reference the store lacks is an
// *InvalidPathError naming it.
func (c *Client) Closure(roots []string) ([]*PathInfo, error) {
	seen := make(map[string]string, len(roots)) // path → its one shared copy
	queue := make([]string, 0, len(roots))
	for _, p := range roots {
		if _, ok := seen[p]; !ok {
			seen[p] = p
			queue = append(queue, p)
		}
	}
	var out []*PathInfo
	size := 0
	for i := 0; i < len(queue); i++ {
		in, err := c.QueryPathInfo(queue[i])
		if err != nil {
			return nil, err
		}
		for j, r := range in.References {
			if shared, ok := seen[r]; ok {
				in.References[j] = shared
				continue
			}
			if len(queue) >= MaxClosurePaths {
				return nil, fmt.Errorf("nixdaemon: the closure of %s has more than %d paths", describe(roots), MaxClosurePaths)
			}
			seen[r] = r
			queue = append(queue, r)
		}
		if size += retained(in); size > MaxClosureBytes {
			return nil, fmt.Errorf("nixdaemon: the closure of %s has more than %d MiB of metadata", describe(roots), MaxClosureBytes>>20)
		}
		out = append(out, in)
	}
	return out, nil
}

// describe names roots in an error: the first, and how many more.
func describe(roots []string) string {
	if len(roots) == 1 {
		return roots[0]
	}
	return fmt.Sprintf("%s and %d more paths", roots[0], len(roots)-1)
}
