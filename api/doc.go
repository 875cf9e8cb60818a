// Package api is Garret's HTTP surface: Nix's binary-cache routes (read, and
// the PUT upload that `nix copy --to` uses), Attic's /_api/v1 API, /metrics,
// and the web pages (web*.go: / and everything under /_garret, a prefix no
// cache name can take since names cannot start with '_').
//
// The web pages take a token from the Authorization header or from a cookie;
// the API never reads the cookie, so a request a browser sends on its own
// cannot use it for anything but viewing pages. The cookie's token goes
// through the API's own check (verifyToken: signature, expiry, revocations)
// on every page. The log-in form's POST must come from this site (Origin,
// Referer or Fetch Metadata). A web link's token carries the Garret claim's
// scope "cluster-page": the API refuses it, and it opens the cluster page
// only; opening the link swaps it for a 12-hour session token with the same
// jti and subject (revoking either ends both) and redirects, so the link's
// token is left neither in the address bar nor in the history.
//
// Handlers return errors; one adapter (writeError) maps them to a status and
// Attic's JSON body {"code","error","message"}, logging internal detail with a
// request id and never leaking storage errors. The interfaces it needs from the
// catalog and the chunk store are declared here, by the consumer.
package api
