package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/logbridge"
)

// logRecorder is a slog.Handler that keeps every record at Debug and above,
// with the attributes of its logger and of the record, for assertions on
// what a node logs.
type logRecorder struct {
	mu      *sync.Mutex
	records *[]loggedLine
	attrs   []slog.Attr
}

type loggedLine struct {
	at    time.Time
	level slog.Level
	text  string // message and attributes, key=value
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, records: &[]loggedLine{}}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.records = append(*h.records, loggedLine{at: time.Now(), level: r.Level, text: b.String()})
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, records: h.records, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

// WithGroup is not used by Garret's components; groups are flattened.
func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// since lists the records at level or above logged at or after t.
func (h *logRecorder) since(t time.Time, level slog.Level) []loggedLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []loggedLine
	for _, l := range *h.records {
		if !l.at.Before(t) && l.level >= level {
			out = append(out, l)
		}
	}
	return out
}

// TestCluster_HealthyLogIsQuiet: once a healthy three-node cluster is up
// and steady, its nodes log nothing at info or above, warnings and errors
// included, over a ten-second window: what an operator reads at the
// default level is what needs them. Then a follower leaves gracefully and
// logs no error doing so.
func TestCluster_HealthyLogIsQuiet(t *testing.T) {
	if testing.Short() {
		t.Skip("watches a cluster for 10 s")
	}
	rec := newLogRecorder()
	// libp2p's loggers too, as garretd wires them (process-wide; set before
	// any node of this test logs).
	gologshim.SetDefaultHandler(logbridge.Libp2p(rec))
	startQuiet := func(name, region string, join []string) *Node {
		// Production timings (Raft's and gossip's WAN ones): with the fast
		// test timings' 50 ms leader lease, a scheduling hiccup of the race
		// detector on a busy machine is an election, which is worth its
		// warnings.
		n, err := New(Config{Server: clusterConfig(t, name, region, join), Logger: slog.New(rec).With("at", name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if !stopped(n) {
				_ = n.Shutdown(context.Background())
			}
		})
		return n
	}
	first := startQuiet("eu-1", "eu", nil)
	seed := first.cluster.GossipAddr()
	nodes := []*Node{first, startQuiet("us-1", "us", []string{seed}), startQuiet("ap-1", "ap", []string{seed})}
	eventually.True(t, "three voters, gossip everywhere, every node ready", func() bool {
		servers, err := first.Catalog().Servers()
		if err != nil || len(servers) != 3 {
			return false
		}
		for _, s := range servers {
			if !s.Voter {
				return false
			}
		}
		for _, n := range nodes {
			if len(n.cluster.Members()) != 3 {
				return false
			}
			resp, err := http.Get(n.URL() + "readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
		}
		return true
	})
	// Steady: no line at info or above for a second (joins, elections and
	// the voter placement that follows them are over).
	eventually.True(t, "the start-up lines to end", func() bool {
		return len(rec.since(time.Now().Add(-time.Second), slog.LevelInfo)) == 0
	})
	start := time.Now()
	// The window is the point of the test: there is nothing to wait for
	// but time passing.
	time.Sleep(10 * time.Second)
	loud := rec.since(start, slog.LevelInfo)
	for _, l := range loud {
		t.Errorf("%s %s", l.level, l.text)
	}
	t.Logf("%d debug lines in the %v window", len(rec.since(start, slog.LevelDebug)), time.Since(start).Round(time.Second))

	// A graceful leave (SIGTERM) is not a failure: the leaving node logs
	// no error while it quits gossip and Raft and closes its sockets.
	var leaving *Node
	for _, n := range nodes {
		if !n.Catalog().IsLeader() {
			leaving = n
		}
	}
	name := leaving.cfg.Server.Cluster.NodeName
	mark := time.Now()
	stoppedByTest.Store(leaving, true)
	if err := leaving.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, l := range rec.since(mark, slog.LevelWarn) {
		if l.level >= slog.LevelError && strings.Contains(l.text, " at="+name+" ") {
			t.Errorf("%s, leaving: %s %s", name, l.level, l.text)
		} else {
			t.Logf("while %s left: %s %s", name, l.level, l.text)
		}
	}
	if testing.Verbose() {
		for _, l := range rec.since(time.Time{}, slog.LevelDebug) {
			t.Logf("%s %s %s", l.at.Format("15:04:05.000"), l.level, l.text)
		}
	}
}
