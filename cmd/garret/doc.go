// Command garret is the client: the Attic guides' `attic` command lines with
// the binary renamed (login, cache create/info/configure/destroy, use, push)
// plus what Attic lacks (cache list, path delete, token revoke). It talks to
// any Attic-compatible server and imports only the wire types in api/v1.
package main
