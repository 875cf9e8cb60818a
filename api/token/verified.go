package token

import "time"

// A token is verified on every request that carries one: for a client that
// pushes (Nix's PUTs, garret push, Attic's upload-path) the signature check
// and the claims' JSON decoding were 9 % of the node's CPU at the scale
// benchmark's 2.8k paths/s. Tokens already verified are kept (a digest of
// the token → its claims) and on a later request only their time claims are
// checked again, exactly as the first verification checked them.
//
// Only tokens up to maxVerifiedToken bytes are kept (Attic's tokens are a
// few hundred bytes), at most maxVerified of them, least recently used out
// first (Authority.verified, golang-lru's thread-safe Cache): about 2 MiB
// at worst. The key is fixed for an Authority's life, so nothing else can
// make a kept verification wrong.
const (
	maxVerified      = 1024
	maxVerifiedToken = 2 << 10
)

// inForce repeats jwt's time checks of a verified token at now: exp
// (required) with leeway, nbf with leeway (jwt/v5's Validator: iat is not
// checked, as Verify does not ask for it).
func (a *Authority) inForce(c *Claims, now time.Time) bool {
	if c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(a.cfg.Leeway)) {
		return false
	}
	return c.NotBefore == nil || !now.Before(c.NotBefore.Add(-a.cfg.Leeway))
}
