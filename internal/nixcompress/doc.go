// Package nixcompress names, recognises and decodes the compressions
// `nix copy --to http://…?compression=X` applies to the NARs it PUTs.
//
// The kind is sniffed from magic bytes (Sniff) because the URL is not
// enough: with compression=gzip Nix uploads nar/<filehash>.nar, without an
// extension. NewReader decodes none, xz, bzip2, gzip and zstd as streams,
// bounded in memory, and turns every corrupt or truncated input into a read
// error rather than a short success (working around ulikunitz/xz, which
// ends silently when a stream is cut right after a block).
package nixcompress
