package logbridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestHCLog_LevelsAndAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hl := HCLog(log, "raft")
	hl.Debug("heartbeat", "peer", "p1")
	hl.Info("entering leader state", "leader", "n1")
	hl.Warn("heartbeat timeout reached", "last-leader-id", "")
	hl.Error("failed to contact", "server-id", "n2", "error", "EOF")
	hl.Named("sub").Warn("named")
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	want := []struct{ level, msg, key string }{
		{"DEBUG", "heartbeat", "peer"}, {"INFO", "entering leader state", "leader"},
		{"WARN", "heartbeat timeout reached", "last-leader-id"}, {"ERROR", "failed to contact", "server-id"}, {"WARN", "named", "lib"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records: %s", len(got), buf.String())
	}
	for i, w := range want {
		if got[i]["level"] != w.level || got[i]["msg"] != w.msg || got[i][w.key] == nil || got[i]["lib"] == nil {
			t.Errorf("record %d: %v, want %+v", i, got[i], w)
		}
	}
	if got[4]["lib"] != "raft.sub" {
		t.Errorf("named logger: lib %v", got[4]["lib"])
	}
}

func TestHCLog_DisabledLevelsCostNothing(t *testing.T) {
	var buf bytes.Buffer
	hl := HCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), "raft")
	hl.Info("routine")
	hl.Debug("chatter")
	if buf.Len() != 0 {
		t.Fatalf("logged below the handler's level: %s", buf.String())
	}
}

func TestPebble(t *testing.T) {
	var buf bytes.Buffer
	l := Pebble(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Infof("compacted %d", 1)
	l.Errorf("disk %s", "full")
	if s := buf.String(); strings.Contains(s, "compacted") || !strings.Contains(s, "level=ERROR msg=\"disk full\"") {
		t.Fatalf("%s", s)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Fatalf returned")
		}
	}()
	l.Fatalf("corrupt")
}
