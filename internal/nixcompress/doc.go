// Package nixcompress names and decodes the compressions `nix copy --to`
// applies to NARs. The kind is sniffed from magic bytes because Nix's URL
// extension is not enough (compression=gzip uploads a plain ".nar" name).
package nixcompress
