// Package token implements Attic-compatible JWTs: HS256 or RS256, the claim
// https://jwt.attic.rs/v1 with cache-name patterns resolved in document order
// (exact match first), sent as Bearer or as the Basic password Nix takes from
// netrc. Garret adds a jti to every token it mints (for revocation), a claim
// of its own for cluster administration, and a small clock-skew leeway. Unlike
// Attic, which lets a token without exp live for ever, Verify refuses one,
// and NewClaims mints only tokens that expire.
package token
