// Package serverconfig loads garretd's server.toml: Attic's keys with Attic's
// meaning (listen, api-endpoint, [jwt.signing], [chunking], [compression],
// [garbage-collection], the ATTIC_SERVER_TOKEN_* variables), the legacy
// top-level token-hs256-secret-base64 that the fly.io guide uses, and
// Garret's own data-dir, [cluster] and [uploads] (decoder-memory,
// min-free-space: sizes in bytes or as "256 MiB"). [database] and
// [storage] are accepted with a warning. WriteDefault is the first-start
// path, like atticd's OOBE.
package serverconfig
