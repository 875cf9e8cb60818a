// Package logbridge sends the logs of the libraries Garret embeds to slog
// with their real levels: hashicorp's hclog (raft and its network
// transport), pebble's logger, and memberlist's standard logger, whose
// lines carry their level as a fixed tag ("[WARN] memberlist: …"). Nothing
// here guesses a level from a message's words.
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
	ctx := context.Background()
	if !s.log.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]slog.Attr, 0, len(args)/2+1)
	attrs = append(attrs, slog.String("lib", name))
	for i := 0; i+1 < len(args); i += 2 {
		attrs = append(attrs, slog.Any(fmt.Sprint(args[i]), args[i+1]))
	}
	if len(args)%2 == 1 {
		attrs = append(attrs, slog.Any("extra", args[len(args)-1]))
	}
	s.log.LogAttrs(ctx, lvl, msg, attrs...)
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
