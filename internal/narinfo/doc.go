// Package narinfo reads and writes Nix's .narinfo files and signs them.
// Parse is as lenient as Nix's own parser (unknown keys ignored), unlike
// go-nix's; String writes fields in Nix's order. Keys and signatures use
// go-nix's ed25519 implementation, in Nix's "name:base64" formats.
package narinfo
