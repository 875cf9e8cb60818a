// Package nar validates Nix archives as they stream. Validator is an io.Writer
// that checks the NAR grammar byte by byte (push-based, no goroutines, memory
// bounded by one 4 KiB token), so an upload can be hashed, chunked and
// validated in one pass. go-nix's reader is not used for untrusted input: it
// accepts truncated archives silently.
package nar
