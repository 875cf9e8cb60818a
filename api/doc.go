// Package api is Garret's HTTP surface: Nix's binary-cache routes (read, and
// the PUT upload that `nix copy --to` uses), Attic's /_api/v1 API, and /metrics.
//
// Handlers return errors; one adapter (writeError) maps them to a status and
// Attic's JSON body {"code","error","message"}, logging internal detail with a
// request id and never leaking storage errors. The interfaces it needs from the
// catalog and the chunk store are declared here, by the consumer.
package api
