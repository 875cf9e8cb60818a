// Package nar validates Nix archives (NARs) as they stream.
//
// Validator is an io.Writer that checks the NAR grammar of `nix-store --dump`
// byte by byte, so an upload can be hashed, chunked and validated in one pass
// (the body is teed into it). It is push-based: no goroutines, no reader of its
// own, and memory bounded by one 4 KiB token buffer plus the previous entry
// name of each open directory (at most 256 × 255 bytes). File contents stream
// through without being buffered.
//
// go-nix's nar.Reader is not used for untrusted input: it accepts archives cut
// inside file contents or trailing tokens as if they were complete, and it
// runs a parser goroutine that leaks when the reader is abandoned.
//
// The grammar (strings are a u64 little-endian length, the bytes, and zero
// padding to a multiple of 8):
//
//	nar   = "nix-archive-1" node
//	node  = "(" "type" ( regular | symlink | directory ) ")"
//	regular   = "regular" [ "executable" "" ] "contents" <bytes>
//	symlink   = "symlink" "target" <target>
//	directory = "directory" { "entry" "(" "name" <name> "node" node ")" }
//
// Names must be non-empty, at most 255 bytes, not "." or "..", free of '/'
// and NUL, and strictly ascending byte-wise within a directory. Symlink
// targets are 1–4095 bytes without NUL. Directories nest at most 256 deep.
// Nothing may follow the archive's final ")".
package nar
