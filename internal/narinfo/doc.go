// Package narinfo reads and writes Nix's .narinfo files and signs them.
//
// Parse is as lenient as Nix's own parser where Nix is lenient (unknown keys
// are ignored, values may contain ": ", "References:" may lack its trailing
// space), unlike go-nix's narinfo.Parse, which rejects all three. String
// writes the fields in Nix's order, so a narinfo written by Nix re-renders
// byte for byte.
//
// Fingerprint is what a narinfo signature covers; SecretKey, GenerateKeypair
// and Verify use go-nix's ed25519 implementation with Nix's "name:base64" key
// and signature formats, so signatures are byte-identical to Nix's.
package narinfo
