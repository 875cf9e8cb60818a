// Package nixdaemon is a minimal client of Nix's daemon worker protocol, the
// stable interface unix:// and ssh-ng:// stores speak. `garret push` uses it
// to learn store paths' metadata (NAR hash and size, references, deriver,
// signatures, content address) and closures without parsing the output of
// Nix's command line, whose JSON changed shape in Nix 2.19.
//
// A Client talks over any io.ReadWriter (NewClient) or runs
// `nix-daemon --stdio` (Start, StartCommand): as root on a single-user
// install that daemon opens the local store itself; for other users it
// forwards the connection to the system daemon's socket; either way it
// honours NIX_REMOTE and the store settings.
//
// The client offers protocol 1.38 and works with daemons from Nix 2.3
// (protocol 1.21) on. The handshake is Nix's: the magic numbers and versions,
// the feature sets exchanged from 1.38, the obsolete CPU-affinity and
// reserve-space words, then the daemon's Nix version (from 1.33) and whether
// it trusts us (from 1.35), then a first stderr message loop. Every reply is
// preceded by that loop: log lines (STDERR_NEXT) go to the caller's log
// function, activities and results are skipped, STDERR_ERROR becomes a
// *DaemonError carrying Nix's message (a string and status before 1.26, the
// structured form after), and STDERR_LAST ends it. Operations:
// wopQueryPathInfo (QueryPathInfo) and a closure walk over references
// (Closure).
//
// Everything read off the wire is bounded: strings by per-field caps, lists
// by count caps checked before anything is allocated, closures by
// MaxClosurePaths. A wire or protocol error leaves the stream out of step, so
// it is sticky: every later call returns it.
package nixdaemon
