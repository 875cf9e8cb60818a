package catalog

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalidCommand is a command that cannot enter the log: of a type this
// node does not know, missing a part, naming something that is not a name,
// or over a size bound (limits.go). The wrapping error says which.
var ErrInvalidCommand = errors.New("catalog: invalid command")

func invalid(t cmdType, format string, args ...any) error {
	return fmt.Errorf("%w: %v: %s", ErrInvalidCommand, t, fmt.Sprintf(format, args...))
}

// wellFormed says why c cannot be applied at all: a type this node does not
// know (a newer node wrote it), a missing part, a cache name or store path
// hash that does not parse. Apply skips such a command on every replica
// alike, so this check is a pure function of the command and, for a given
// type, is never made stricter in a later version; size bounds are not part
// of it (see validate).
func (c *command) wellFormed() error {
	if c.p == nil {
		return invalid(c.Type, "this node does not know the command (written by a newer Garret?)")
	}
	return c.p.wellFormed()
}

// cachePatternRE is Attic's token cache-pattern alphabet (as api/token's).
var cachePatternRE = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$`)

// validate is the check every command passes on the leader before it is
// proposed: wellFormed, the size bounds of limits.go, and the encoded size.
// It returns the command as it will be written into the log.
func (c *command) validate() ([]byte, error) {
	if err := c.wellFormed(); err != nil {
		return nil, err
	}
	if err := c.bounded(); err != nil {
		return nil, err
	}
	// MarshalJSON directly: json.Marshal(c) would scan its output twice
	// more (validate, compact) for the same bytes (FuzzForwardedCommand).
	raw, err := c.MarshalJSON()
	if err != nil {
		return nil, invalid(c.Type, "%v", err)
	}
	if len(raw) > MaxCommandBytes {
		return nil, invalid(c.Type, "%d bytes encoded, more than the %d a command may take", len(raw), MaxCommandBytes)
	}
	return raw, nil
}

// bounds collects the first bound a payload's fields break.
type bounds struct {
	t   cmdType
	err error
}

func (b *bounds) fail(format string, args ...any) {
	if b.err == nil {
		b.err = invalid(b.t, format, args...)
	}
}

func (b *bounds) str(what, s string, max int) {
	if len(s) > max {
		b.fail("%s is %d bytes, more than %d", what, len(s), max)
	}
}

func (b *bounds) count(what string, n, max int) {
	if n > max {
		b.fail("%d %s, more than %d", n, what, max)
	}
}

func (b *bounds) list(what string, l []string, maxItems, maxEach int) {
	b.count(what, len(l), maxItems)
	for i, s := range l {
		b.str(fmt.Sprintf("%s %d", what, i+1), s, maxEach)
	}
}

// bounded checks each field against its bound.
func (c *command) bounded() error {
	b := bounds{t: c.Type}
	c.p.bounded(&b)
	return b.err
}
