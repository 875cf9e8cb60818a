// Package logbridge sends the logs of the libraries Garret embeds to slog
// with their real levels: hashicorp's hclog (raft and its network
// transport), pebble's logger, memberlist's standard logger, whose lines
// carry their level as a fixed tag ("[WARN] memberlist: …"), and libp2p's
// slog loggers. Nothing here guesses a level from a message's words: the
// few raft warnings that a healthy cluster logs routinely are listed by
// their exact message (raftRoutineWarnings).
package logbridge

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"
)

// HCLog is an hclog.Logger whose records reach log as slog records: Trace
// and Debug at Debug, Info at Info (raft logs elections and configuration
// changes there; a healthy cluster's steady state logs nothing), Warn at
// Warn, Error at Error, with the library's key/value pairs as attributes
// and the logger's name as "lib".
func HCLog(log *slog.Logger, name string) hclog.Logger {
	// The intercept logger hands every record to its sinks; its own
	// output is off.
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Level: hclog.Off, Output: io.Discard})
	il.RegisterSink(sink{log})
	return il
}

type sink struct{ log *slog.Logger }

// Level maps an hclog level to slog's.
func Level(l hclog.Level) slog.Level {
	switch {
	case l >= hclog.Error:
		return slog.LevelError
	case l == hclog.Warn:
		return slog.LevelWarn
	case l == hclog.Info:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func (s sink) Accept(name string, level hclog.Level, msg string, args ...any) {
	lvl := Level(level)
	if lvl == slog.LevelWarn && name == "raft" {
		lvl = raftRoutine(msg, args)
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]slog.Attr, 0, len(args)/2+1)
	attrs = append(attrs, slog.String("lib", name))
	for i := 0; i+1 < len(args); i += 2 {
		attrs = append(attrs, hclogAttr(fmt.Sprint(args[i]), args[i+1]))
	}
	if len(args)%2 == 1 {
		attrs = append(attrs, slog.Any("extra", args[len(args)-1]))
	}
	s.log.LogAttrs(ctx, lvl, msg, attrs...)
}

// raftRoutineWarnings are the warnings hashicorp/raft logs in a healthy
// cluster as a matter of course, each with the exact message and the
// argument that shows it is the routine case, and the level it is logged
// at instead of Warn. Found by TestCluster_HealthyLogIsQuiet (node): every
// bootstrap and every member added logged these at Warn.
var raftRoutineWarnings = []struct {
	msg, key, value string // key "": whatever the arguments
	level           slog.Level
}{
	// The first election after start: no leader was ever known. After a
	// leader was lost, last-leader-id names it and the warning stays.
	{"heartbeat timeout reached, starting election", "last-leader-id", "", slog.LevelInfo},
	// A node that joins has no Raft configuration until the leader adds
	// it; raft says so once.
	{"no known peers, aborting election", "", "", slog.LevelInfo},
	// A member just added has no log yet; the leader then sends it the
	// log from the start (or a snapshot). A follower whose log has
	// entries and still misses one keeps the warning.
	{"failed to get previous log", "last-index", "0", slog.LevelDebug},
	// The leader's side of catching up a follower that is behind: a new
	// member, a restarted one, one back from a partition. Whatever made
	// it fall behind is logged where it happened.
	{"appendEntries rejected, sending older logs", "", "", slog.LevelInfo},
}

// raftRoutine is the level of one of raft's warnings: Warn, or the level
// of the routine case in raftRoutineWarnings.
func raftRoutine(msg string, args []any) slog.Level {
	for _, r := range raftRoutineWarnings {
		if r.msg != msg {
			continue
		}
		if r.key == "" {
			return r.level
		}
		for i := 0; i+1 < len(args); i += 2 {
			if fmt.Sprint(args[i]) == r.key && fmt.Sprint(args[i+1]) == r.value {
				return r.level
			}
		}
	}
	return slog.LevelWarn
}

// hclogAttr renders one of an hclog record's values as hclog's own
// formatter would: hclog.Fmt values formatted, Stringers (raft passes its
// *Raft, whose String is "Node at … [Leader]") as their String, so a JSON
// log shows what a text one does rather than a struct's exported fields.
func hclogAttr(key string, v any) slog.Attr {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) > 0 {
			if f, ok := v[0].(string); ok {
				return slog.String(key, fmt.Sprintf(f, v[1:]...))
			}
		}
		return slog.String(key, fmt.Sprint(v...))
	case error:
		return slog.Any(key, v)
	case fmt.Stringer:
		return slog.String(key, v.String())
	}
	return slog.Any(key, v)
}

// QuietOnceDone is log with every record lowered to Debug once done reports
// true: for a component whose library logs the failures of its own closed
// sockets as errors while it shuts down (memberlist's gossip after Leave,
// raft's transport after Close), which is the shutdown working.
func QuietOnceDone(log *slog.Logger, done func() bool) *slog.Logger {
	return slog.New(quietHandler{log.Handler(), done})
}

type quietHandler struct {
	h    slog.Handler
	done func() bool
}

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if q.done() {
		l = slog.LevelDebug
	}
	return q.h.Enabled(ctx, l)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && q.done() {
		r = r.Clone()
		r.Level = slog.LevelDebug
	}
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{q.h.WithAttrs(attrs), q.done}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.h.WithGroup(name), q.done}
}

// Pebble is a pebble.Logger over log: its info chatter (compactions,
// flushes) at Debug, errors at Error. Fatalf logs and panics: pebble's
// contract is that it does not return, and only cmd/ may exit.
func Pebble(log *slog.Logger) pebble.Logger { return pebbleLogger{log} }

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

func (l pebbleLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic(msg)
}

// Memberlist is a standard logger for memberlist.Config.Logger: each line's
// level tag ([DEBUG], [INFO], [WARN], [ERR]) becomes the slog level, the tag
// and the "memberlist: " prefix are cut, and lib=memberlist is added. A line
// without a tag is logged at Info.
func Memberlist(l *slog.Logger) *log.Logger {
	return log.New(memberlistWriter{l}, "", 0)
}

type memberlistWriter struct{ log *slog.Logger }

var memberlistLevels = []struct {
	tag   string
	level slog.Level
}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelError}, {"[ERROR] ", slog.LevelError}}

func (w memberlistWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	lvl := slog.LevelInfo
	for _, l := range memberlistLevels {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			line, lvl = rest, l.level
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.log.LogAttrs(context.Background(), lvl, line, slog.String("lib", "memberlist"))
	return len(p), nil
}

// Libp2p is the handler for libp2p's loggers (gologshim.SetDefaultHandler):
// records go to h with lib=libp2p, libp2p's Info lowered to Debug (it logs
// routine connection and resource-manager events there), Warn and Error
// kept. Without it libp2p writes its own JSON lines to stderr past
// --log-level and --log-format.
func Libp2p(h slog.Handler) slog.Handler {
	return libp2pHandler{h.WithAttrs([]slog.Attr{slog.String("lib", "libp2p")})}
}

type libp2pHandler struct{ h slog.Handler }

func libp2pLevel(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (l libp2pHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, libp2pLevel(level))
}

func (l libp2pHandler) Handle(ctx context.Context, r slog.Record) error {
	if lvl := libp2pLevel(r.Level); lvl != r.Level {
		r = r.Clone()
		r.Level = lvl
	}
	return l.h.Handle(ctx, r)
}

func (l libp2pHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return libp2pHandler{l.h.WithAttrs(attrs)}
}

func (l libp2pHandler) WithGroup(name string) slog.Handler { return libp2pHandler{l.h.WithGroup(name)} }
