package nar

import "bytes"

// startNode expects "(" "type" <type>.
func (v *Validator) startNode() error {
	v.want = v.expect("(", func() error {
		v.want = v.expect("type", func() error {
			v.want = v.nodeType
			return nil
		})
		return nil
	})
	return nil
}

func (v *Validator) nodeType(tok []byte) error {
	switch string(tok) {
	case "regular":
		v.want = v.regular
	case "symlink":
		v.want = v.expect("target", func() error {
			v.maxLen = maxTarget
			v.want = v.target
			return nil
		})
	case "directory":
		if len(v.dirs) >= maxDepth {
			return v.fail("directories nested deeper than %d", maxDepth)
		}
		v.dirs = append(v.dirs, "")
		v.want = v.dirEntry
	default:
		return v.fail("unknown node type %q", printable(tok))
	}
	return nil
}

func (v *Validator) regular(tok []byte) error {
	switch string(tok) {
	case "executable":
		v.want = v.expect("", func() error {
			v.want = v.expect("contents", v.contents)
			return nil
		})
		return nil
	case "contents":
		return v.contents()
	}
	return v.fail("expected \"contents\" or \"executable\", got %q", printable(tok))
}

// contents streams the file body without buffering it.
func (v *Validator) contents() error {
	v.stream = true
	v.want = func([]byte) error {
		v.stream = false
		v.want = v.expect(")", v.endNode)
		return nil
	}
	return nil
}

func (v *Validator) target(tok []byte) error {
	if len(tok) == 0 {
		return v.fail("empty symlink target")
	}
	if bytes.IndexByte(tok, 0) >= 0 {
		return v.fail("symlink target contains NUL")
	}
	v.want = v.expect(")", v.endNode)
	return nil
}

// endNode runs after a node's closing ")": the archive ends, or the entry
// that held the node closes.
func (v *Validator) endNode() error {
	if len(v.dirs) == 0 {
		v.done = true
		return nil
	}
	v.want = v.expect(")", func() error {
		v.want = v.dirEntry
		return nil
	})
	return nil
}

func (v *Validator) dirEntry(tok []byte) error {
	switch string(tok) {
	case ")":
		v.dirs = v.dirs[:len(v.dirs)-1]
		return v.endNode()
	case "entry":
		v.want = v.expect("(", func() error {
			v.want = v.expect("name", func() error {
				v.maxLen = maxName
				v.want = v.entryName
				return nil
			})
			return nil
		})
		return nil
	}
	return v.fail("expected \"entry\" or \")\", got %q", printable(tok))
}

func (v *Validator) entryName(tok []byte) error {
	name := string(tok)
	switch {
	case name == "":
		return v.fail("empty entry name")
	case name == "." || name == "..":
		return v.fail("entry name %q", name)
	case bytes.IndexByte(tok, '/') >= 0:
		return v.fail("entry name %q contains '/'", name)
	case bytes.IndexByte(tok, 0) >= 0:
		return v.fail("entry name contains NUL")
	}
	prev := &v.dirs[len(v.dirs)-1]
	if *prev != "" && name <= *prev {
		return v.fail("entry %q after %q: entries not sorted or duplicated", name, *prev)
	}
	*prev = name
	v.want = v.expect("node", v.startNode)
	return nil
}
