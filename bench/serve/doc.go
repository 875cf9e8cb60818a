// Command serve is issue 13's benchmark suite: Garret side by side with a
// peer measured in the same run, on the same machine, on the same corpus.
//
// The corpus is built by the suite: entries of large trees (the Go toolchain,
// /usr/lib/x86_64-linux-gnu, then /usr/share and the Go module cache as
// needed) added to the Nix store with `nix-store --add`, plus a generated
// closure of a few hundred small derivations that reference each other and
// some of the tree paths. -corpus-mib sets its NAR size (default 2100 MiB:
// the issue asks ≥ 1 GiB for the push and ≥ 2 GiB for the memory run).
//
// Phases (-only selects some; each adds rows to one table):
//
//   - push: `nix copy --to 'file://…?compression=zstd'` of the whole corpus
//     (the peer, and the cache nginx serves later), then `nix copy --to
//     'http://…/upload/bench?compression=zstd'` of it into a fresh garretd,
//     then `garret push -j 8` into another fresh garretd; wall times, the
//     least of -push-rounds interleaved rounds.
//   - reads: a fresh garretd takes the corpus from 8 concurrent `nix copy`
//     processes over disjoint sub-closures (its VmHWM is the push's peak RSS),
//     nginx serves the file:// cache, and wrk measures both: narinfo req/s,
//     p50/p99 and errors at 1, 64 and 1000 connections, then NAR download at
//     1 and 16 connections in NAR-equivalent MiB/s (wire bytes × NarSize ÷
//     served size of the NARs wrk asked for). garretd's VmHWM is reset
//     (clear_refs) before the 1000-connection run and read after it.
//   - distance: a cluster of two garretd (eu-1 bootstraps, us-1 joins) on
//     the e2e tests' WAN emulator, 150 ms RTT apart, takes a closure of
//     -distance-paths generated paths at eu-1 (`nix copy --to`); once us-1
//     holds it all, `nix-store --store EMPTY -r` on us-1's host substitutes it
//     from us-1, from eu-1 across the WAN, and from a lone garretd on the same
//     host that took the same push.
//   - lag: another such cluster with the link capped at 100 Mbit/s; -lag-mib
//     of random bytes pushed at eu-1; the time from the push's start until
//     us-1 holds all of it, against bytes ÷ bandwidth + RTT.
//   - scale: a fresh garretd takes -scale-paths store paths (10⁶; 20,000
//     under -quick) through Attic's upload-path from a loader in this
//     process, 256 in flight, each a distinct path with the same tiny NAR,
//     so every path is one command through Raft; then narinfo p50/p99 over
//     a random sample at 1 and 64 connections, the snapshots Raft took (from
//     the node's log), the data dir's size, a restart, a second node joining
//     (time until its catalog has every entry), and VmHWM. It needs no
//     corpus.
//
// One table (figure, Garret, peer, ratio, target, met) is printed and
// appended to -out with the date, machine, commit, tool versions and corpus.
// distance and lag need root, /dev/net/tun and iproute2.
// bench/README.md says how to run it and what each figure means.
package main
