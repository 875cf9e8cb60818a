// Package nixcompress names, recognises and decodes the compressions
// `nix copy --to http://…?compression=X` applies to the NARs it PUTs: none,
// xz, bzip2, gzip, zstd, br (Brotli), lz4, lzip, lzma and compress (.Z),
// every one Nix can write without an external program (lzop, grzip and
// lrzip need one, fail in Nix itself, and are refused by name).
//
// The kind comes from magic bytes (Sniff) because the URL is not enough:
// with compression=gzip, lzma or compress Nix uploads nar/<filehash>.nar,
// without an extension. Brotli has no magic, so Detect also takes the kind
// the caller was told (the .nar.<ext> of the file name, or a narinfo's
// Compression), checks it against the magic where the format has one and
// trusts it for br. NewReader decodes every kind as a stream, bounded in
// memory (windows and dictionaries are capped before anything is
// allocated), and turns corrupt or truncated input into a read error
// rather than a short success (working around ulikunitz/xz, which ends
// silently when an xz stream is cut right after a block, and pierrec/lz4,
// whose frame reader accepts legacy frames that have no end). The .Z
// format alone has no length or checksum, so a cut between two codes
// cannot be seen there; the NAR validator and NarHash catch it.
package nixcompress
