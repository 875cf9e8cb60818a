package logbridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
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

// TestMemberlist_Levels: memberlist's level tags become slog levels, the tag
// and its "memberlist: " prefix are cut, and a healthy node's debug chatter
// stays out of an info-level log.
func TestMemberlist_Levels(t *testing.T) {
	var buf bytes.Buffer
	l := Memberlist(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Printf("[DEBUG] memberlist: Stream connection from=10.0.0.2:7946")
	l.Printf("[INFO] memberlist: Marking us-1 as failed, suspect timeout reached (0 peer confirmations)")
	l.Printf("[WARN] memberlist: Was able to connect to us-1 over TCP but UDP probes failed, network may be misconfigured")
	l.Printf("[ERR] memberlist: Failed to send ping: write udp: no route to host")
	l.Printf("untagged")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["lib"] != "memberlist" {
			t.Fatalf("no lib attribute: %s", line)
		}
		got = append(got, m["level"].(string)+" "+m["msg"].(string))
	}
	want := []string{
		"INFO Marking us-1 as failed, suspect timeout reached (0 peer confirmations)",
		"WARN Was able to connect to us-1 over TCP but UDP probes failed, network may be misconfigured",
		"ERROR Failed to send ping: write udp: no route to host",
		"INFO untagged",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestHCLog_RaftRoutineWarnings: the warnings raft logs in every healthy
// cluster's start (the first election, a new member's catch-up) are at
// info or debug; the same messages in the cases worth a warning, and other
// libraries' identical messages, stay warnings.
func TestHCLog_RaftRoutineWarnings(t *testing.T) {
	for _, c := range []struct {
		lib, msg string
		args     []any
		want     string
	}{
		{"raft", "heartbeat timeout reached, starting election", []any{"last-leader-addr", "", "last-leader-id", ""}, "INFO"},
		{"raft", "heartbeat timeout reached, starting election", []any{"last-leader-addr", "a", "last-leader-id", "n1"}, "WARN"},
		{"raft", "failed to get previous log", []any{"previous-index", uint64(4), "last-index", uint64(0), "error", "log not found"}, "DEBUG"},
		{"raft", "failed to get previous log", []any{"previous-index", uint64(9), "last-index", uint64(7), "error", "log not found"}, "WARN"},
		{"raft", "appendEntries rejected, sending older logs", []any{"peer", "p", "next", uint64(1)}, "INFO"},
		{"raft", "failed to contact quorum of nodes, stepping down", nil, "WARN"},
		{"raft", "no known peers, aborting election", nil, "INFO"},
		{"raft-net", "appendEntries rejected, sending older logs", nil, "WARN"},
	} {
		var buf bytes.Buffer
		hl := HCLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), c.lib)
		hl.Warn(c.msg, c.args...)
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%s: %q: %v", c.msg, buf.String(), err)
		}
		if m["level"] != c.want || m["msg"] != c.msg {
			t.Errorf("%s %s %v: logged %v, want level %s", c.lib, c.msg, c.args, m, c.want)
		}
	}
}

// TestLibp2p: libp2p's info is debug, its warnings and errors stay, with
// lib=libp2p and the logger's own attributes.
func TestLibp2p(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Libp2p(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))).With("logger", "swarm2")
	log.Info("dialing")
	log.Debug("chatter")
	if buf.Len() != 0 {
		t.Fatalf("libp2p info/debug shown at info: %s", buf.String())
	}
	log.Warn("resource limit exceeded", "scope", "system")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["level"] != "WARN" || m["lib"] != "libp2p" || m["logger"] != "swarm2" || m["scope"] != "system" {
		t.Fatalf("libp2p warning: %v", m)
	}
	buf.Reset()
	dbg := slog.New(Libp2p(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	dbg.Info("dialing")
	if !strings.Contains(buf.String(), "level=DEBUG msg=dialing lib=libp2p") {
		t.Fatalf("libp2p info at debug: %q", buf.String())
	}
}

type stringer struct{ Hidden int }

func (stringer) String() string { return "Node at n1 [Leader]" }

// TestHCLog_ValuesAsHCLogFormatsThem: hclog.Fmt values are formatted and
// Stringers logged as their String, in JSON as in text.
func TestHCLog_ValuesAsHCLogFormatsThem(t *testing.T) {
	var buf bytes.Buffer
	hl := HCLog(slog.New(slog.NewJSONHandler(&buf, nil)), "raft")
	hl.Info("initial configuration", "servers", hclog.Fmt("%+v", []int{1, 2}), "leader", stringer{7}, "index", 3)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["servers"] != "[1 2]" || m["leader"] != "Node at n1 [Leader]" || m["index"] != float64(3) {
		t.Fatalf("values: %v", m)
	}
}

// TestQuietOnceDone: records keep their level until done, then are debug.
func TestQuietOnceDone(t *testing.T) {
	var buf bytes.Buffer
	done := false
	log := QuietOnceDone(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), func() bool { return done })
	log.Error("real failure")
	done = true
	log.With("k", "v").Error("socket closed")
	out := buf.String()
	if !strings.Contains(out, "level=ERROR msg=\"real failure\"") || !strings.Contains(out, "level=DEBUG msg=\"socket closed\" k=v") {
		t.Fatalf("logged %q", out)
	}
	buf.Reset()
	quiet := QuietOnceDone(slog.New(slog.NewTextHandler(&buf, nil)), func() bool { return true })
	quiet.Error("after shutdown")
	if buf.Len() != 0 {
		t.Fatalf("shown at info once done: %q", buf.String())
	}
}
