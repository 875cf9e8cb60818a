package nar

import (
	"bytes"
	"fmt"
	"math"
)

// state is what the next complete string must be.
type state uint8

const (
	stMagic       state = iota // "nix-archive-1"
	stOpen                     // "(" opening a node
	stTypeKey                  // "type"
	stType                     // "regular" | "symlink" | "directory"
	stRegular                  // "executable" | "contents"
	stExecMarker               // "" after "executable"
	stContentsKey              // "contents" after an executable's marker
	stContents                 // file contents, streamed
	stTargetKey                // "target"
	stTarget                   // symlink target
	stNodeClose                // ")" closing a regular file or symlink
	stDirEntry                 // "entry" | ")" closing a directory
	stEntryOpen                // "(" opening an entry
	stNameKey                  // "name"
	stName                     // entry name
	stNodeKey                  // "node"
	stEntryClose               // ")" closing an entry
	stDone                     // the archive is complete
)

const magic = "nix-archive-1"

// limit is the largest string length accepted in this state, and what to
// call the string when it is too long.
func (s state) limit() (uint64, string) {
	switch s {
	case stContents:
		return math.MaxUint64, ""
	case stName:
		return maxName, "entry name"
	case stTarget:
		return maxTarget, "symlink target"
	}
	return maxToken, "token"
}

// noun names the string read in this state, for messages.
func (s state) noun() string {
	switch s {
	case stContents:
		return "file contents"
	case stName:
		return "an entry name"
	case stTarget:
		return "a symlink target"
	}
	return "a token"
}

// expected lists the strings this state accepts, for messages.
func (s state) expected() string {
	switch s {
	case stMagic:
		return `"` + magic + `"`
	case stOpen, stEntryOpen:
		return `"("`
	case stTypeKey:
		return `"type"`
	case stType:
		return `"regular", "symlink" or "directory"`
	case stRegular:
		return `"executable" or "contents"`
	case stExecMarker:
		return `""`
	case stContentsKey:
		return `"contents"`
	case stContents:
		return "file contents"
	case stTargetKey:
		return `"target"`
	case stTarget:
		return "a symlink target"
	case stNodeClose, stEntryClose:
		return `")"`
	case stDirEntry:
		return `"entry" or ")"`
	case stNameKey:
		return `"name"`
	case stName:
		return "an entry name"
	case stNodeKey:
		return `"node"`
	}
	return "nothing more"
}

// token advances the grammar by one complete string; tok is nil for file
// contents, which are not buffered.
func (v *Validator) token(tok []byte) error {
	switch v.st {
	case stContents:
		v.st = stNodeClose
		return nil
	case stType:
		return v.nodeType(tok)
	case stRegular:
		switch string(tok) {
		case "executable":
			v.st = stExecMarker
			return nil
		case "contents":
			v.st = stContents
			return nil
		}
	case stTarget:
		return v.target(tok)
	case stDirEntry:
		switch string(tok) {
		case "entry":
			v.st = stEntryOpen
			return nil
		case ")":
			v.pool = append(v.pool, v.prev[len(v.prev)-1])
			v.prev = v.prev[:len(v.prev)-1]
			v.endNode()
			return nil
		}
	case stName:
		return v.entryName(tok)
	case stNodeClose:
		if string(tok) == ")" {
			v.endNode()
			return nil
		}
	default:
		if lit, next, ok := v.st.literal(); ok && string(tok) == lit {
			v.st = next
			return nil
		}
	}
	return v.fail(v.tokStart, "expected %s, got %s", v.st.expected(), quote(tok))
}

// literal is the one string a fixed-token state accepts and the state that
// follows it; ok is false for the other states.
func (s state) literal() (lit string, next state, ok bool) {
	switch s {
	case stMagic:
		return magic, stOpen, true
	case stOpen:
		return "(", stTypeKey, true
	case stTypeKey:
		return "type", stType, true
	case stExecMarker:
		return "", stContentsKey, true
	case stContentsKey:
		return "contents", stContents, true
	case stTargetKey:
		return "target", stTarget, true
	case stEntryOpen:
		return "(", stNameKey, true
	case stNameKey:
		return "name", stName, true
	case stNodeKey:
		return "node", stOpen, true
	case stEntryClose:
		return ")", stDirEntry, true
	}
	return "", s, false
}

func (v *Validator) nodeType(tok []byte) error {
	switch string(tok) {
	case "regular":
		v.st = stRegular
	case "symlink":
		v.st = stTargetKey
	case "directory":
		if len(v.prev) >= maxDepth {
			return v.fail(v.tokStart, "directories nested deeper than %d", maxDepth)
		}
		var buf []byte
		if n := len(v.pool); n > 0 {
			buf, v.pool = v.pool[n-1][:0], v.pool[:n-1]
		}
		v.prev = append(v.prev, buf)
		v.st = stDirEntry
	default:
		return v.fail(v.tokStart, "unknown node type %s", quote(tok))
	}
	return nil
}

func (v *Validator) target(tok []byte) error {
	switch {
	case len(tok) == 0:
		return v.fail(v.tokStart, "empty symlink target")
	case bytes.IndexByte(tok, 0) >= 0:
		return v.fail(v.tokStart, "symlink target %s contains NUL", quote(tok))
	}
	v.st = stNodeClose
	return nil
}

func (v *Validator) entryName(tok []byte) error {
	switch {
	case len(tok) == 0:
		return v.fail(v.tokStart, "empty entry name")
	case string(tok) == "." || string(tok) == "..":
		return v.fail(v.tokStart, "entry name %s", quote(tok))
	case bytes.IndexByte(tok, '/') >= 0:
		return v.fail(v.tokStart, "entry name %s contains '/'", quote(tok))
	case bytes.IndexByte(tok, 0) >= 0:
		return v.fail(v.tokStart, "entry name %s contains NUL", quote(tok))
	}
	prev := &v.prev[len(v.prev)-1]
	if len(*prev) > 0 { // names are never empty, so this is "not the first entry"
		switch c := bytes.Compare(tok, *prev); {
		case c == 0:
			return v.fail(v.tokStart, "duplicate entry %s", quote(tok))
		case c < 0:
			return v.fail(v.tokStart, "entry %s after %s: entries not sorted", quote(tok), quote(*prev))
		}
	}
	*prev = append((*prev)[:0], tok...)
	v.st = stNodeKey
	return nil
}

// endNode runs after a node's closing ")": either the archive is complete or
// the entry holding the node must close.
func (v *Validator) endNode() {
	if len(v.prev) == 0 {
		v.st = stDone
	} else {
		v.st = stEntryClose
	}
}

// quote renders a token for a message, shortened if long.
func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}
