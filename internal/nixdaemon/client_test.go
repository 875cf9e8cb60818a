package nixdaemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/garret-cache/garret/internal/nixid"
)

// stream builds the bytes a daemon sends (or a client should send). It is
// written independently of wire's encoder, so that a framing bug in one
// cannot hide in the other.
type stream struct{ bytes.Buffer }

func (s *stream) u64(ns ...uint64) *stream {
	for _, n := range ns {
		_, _ = s.Write(binary.LittleEndian.AppendUint64(nil, n))
	}
	return s
}

func (s *stream) str(ss ...string) *stream {
	for _, v := range ss {
		s.u64(uint64(len(v)))
		s.WriteString(v)
		for len(v)%8 != 0 {
			s.WriteByte(0)
			v += "."
		}
	}
	return s
}

// raw appends bytes as they are.
func (s *stream) raw(b string) *stream { s.WriteString(b); return s }

// list writes a count, then the strings.
func (s *stream) list(ss ...string) *stream { return s.u64(uint64(len(ss))).str(ss...) }

// conn is a canned daemon: reads come from in, writes are recorded.
type conn struct {
	in     *bytes.Reader
	out    bytes.Buffer
	broken bool // writes fail, as to a daemon that exited
}

func (c *conn) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *conn) Write(p []byte) (int, error) {
	if c.broken {
		return 0, errors.New("write |1: broken pipe")
	}
	return c.out.Write(p)
}

const (
	top = "/nix/store/7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-top"
	dep = "/nix/store/2kzak5jysx3z91k220cd1cxh527hl7wy-dep"
	drv = "/nix/store/2y8cb6jcc7jr1f9ihbzijjpykaqshqr5-top.drv"
	sig = "test-1:maOnVb96fGP9uypEmwwebD35V05piwf5Yr40J7yKe70RaOrf+cX/1SZSZ1QTbYjhh0O/fhYXmdNE6s+w6LnsBA=="
)

var narHash = sha256.Sum256([]byte("nar"))

// hello is a daemon's side of the handshake at protocol 1.minor.
func hello(minor uint64) *stream {
	s := new(stream).u64(workerMagic2, 1<<8|minor)
	if minor >= 38 {
		s.list("some-future-feature")
	}
	if minor >= 33 {
		s.str("2.99.0")
	}
	if minor >= 35 {
		s.u64(2) // not trusted
	}
	return s.u64(stderrLast)
}

// pathInfo is a wopQueryPathInfo reply (after the stderr loop).
func pathInfo(s *stream, deriver string, refs []string, sigs []string, ca string) *stream {
	s.u64(1).str(deriver, hex.EncodeToString(narHash[:])).list(refs...).u64(1796285288, 336, 1).list(sigs...).str(ca)
	return s
}

func newConn(t *testing.T, daemon *stream) (*Client, *conn, []string) {
	t.Helper()
	cn := &conn{in: bytes.NewReader(daemon.Bytes())}
	var logs []string
	c, err := NewClient(cn, func(s string) { logs = append(logs, s) })
	if err != nil {
		t.Fatal(err)
	}
	return c, cn, logs
}

func TestHandshake_Versions(t *testing.T) {
	for _, tc := range []struct {
		minor      uint64
		negotiated int
		nixVersion string
		trust      Trust
		sent       *stream
	}{
		// Nix 2.3: no version string, no trust, no features.
		{21, 21, "", TrustUnknown, new(stream).u64(workerMagic1, clientVersion, 0, 0)},
		// Nix 2.8.
		{34, 34, "2.99.0", TrustUnknown, new(stream).u64(workerMagic1, clientVersion, 0, 0)},
		// Nix 2.26: features exchanged (we offer none).
		{38, 38, "2.99.0", NotTrusted, new(stream).u64(workerMagic1, clientVersion, 0, 0, 0)},
		// A newer daemon: we speak 1.38.
		{39, 38, "2.99.0", NotTrusted, new(stream).u64(workerMagic1, clientVersion, 0, 0, 0)},
	} {
		c, cn, _ := newConn(t, hello(tc.minor))
		if maj, mnr := c.ProtocolVersion(); maj != 1 || mnr != tc.negotiated {
			t.Errorf("1.%d: negotiated %d.%d", tc.minor, maj, mnr)
		}
		if c.NixVersion() != tc.nixVersion || c.Trust() != tc.trust {
			t.Errorf("1.%d: version %q, trust %v", tc.minor, c.NixVersion(), c.Trust())
		}
		if !bytes.Equal(cn.out.Bytes(), tc.sent.Bytes()) {
			t.Errorf("1.%d: client sent\n%x\nwant\n%x", tc.minor, cn.out.Bytes(), tc.sent.Bytes())
		}
		if cn.in.Len() != 0 {
			t.Errorf("1.%d: %d bytes of the handshake left unread", tc.minor, cn.in.Len())
		}
	}
}

func TestHandshake_Refused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		daemon *stream
		want   string
	}{
		{"bad magic", new(stream).str("HTTP/1.1 400 Bad Request"), "not a Nix daemon"},
		{"too old", new(stream).u64(workerMagic2, 1<<8|20), "1.20; garret needs 1.21 (Nix 2.3)"},
		{"major 2", new(stream).u64(workerMagic2, 2<<8|1), "protocol 2.1; only 1.x"},
		{"hangs up", new(stream).u64(workerMagic2), "nix-daemon closed the connection"},
		{"bad trust", new(stream).u64(workerMagic2, 1<<8|35).str("2.18").u64(7), "7 is not 0, 1 or 2"},
		{"startup error", new(stream).u64(workerMagic2, 1<<8|34).str("2.8.0").u64(stderrError).
			str("Error").u64(0).str("Error", "cannot open the store").u64(0, 0), "nix-daemon: cannot open the store"},
	} {
		_, err := NewClient(&conn{in: bytes.NewReader(tc.daemon.Bytes())}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestQueryPathInfo(t *testing.T) {
	d := hello(38)
	// The stderr loop: a log line, an activity with both field types, a
	// result, the activity's end, then the reply.
	d.u64(stderrNext).str("warning: \x1b[33;1msomething\x1b[0m\n")
	d.u64(stderrStartActivity, 7, 3, 105).str("querying info").u64(2, 0, 42, 1).str("field").u64(0)
	d.u64(stderrResult, 7, 104, 1, 0, 12)
	d.u64(stderrStopActivity, 7, stderrLast)
	pathInfo(d, drv, []string{dep, top}, []string{sig, "other-1:AAAA"}, "")
	c, cn, _ := newConn(t, d)
	var logs []string
	c.log = func(s string) { logs = append(logs, s) }
	cn.out.Reset()

	in, err := c.QueryPathInfo(top)
	if err != nil {
		t.Fatal(err)
	}
	want := &PathInfo{Path: top, Deriver: drv, NarHash: nixid.NarHash(narHash), References: []string{dep, top},
		RegistrationTime: time.Unix(1796285288, 0).UTC(), NarSize: 336, Ultimate: true, Sigs: []string{sig, "other-1:AAAA"}}
	if !equalInfo(in, want) {
		t.Errorf("got  %+v\nwant %+v", in, want)
	}
	if !slices.Equal(logs, []string{"warning: something"}) {
		t.Errorf("logs %q", logs)
	}
	if sent := new(stream).u64(opQueryPathInfo).str(top); !bytes.Equal(cn.out.Bytes(), sent.Bytes()) {
		t.Errorf("request %x, want %x", cn.out.Bytes(), sent.Bytes())
	}
}

func equalInfo(a, b *PathInfo) bool {
	return a.Path == b.Path && a.Deriver == b.Deriver && a.NarHash == b.NarHash && slices.Equal(a.References, b.References) &&
		a.RegistrationTime.Equal(b.RegistrationTime) && a.NarSize == b.NarSize && a.Ultimate == b.Ultimate &&
		slices.Equal(a.Sigs, b.Sigs) && a.CA == b.CA
}

func TestQueryPathInfo_CAAndNoDeriver(t *testing.T) {
	ca := "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
	d := hello(34).u64(stderrLast)
	pathInfo(d, "", nil, nil, ca)
	c, _, _ := newConn(t, d)
	in, err := c.QueryPathInfo(dep)
	if err != nil {
		t.Fatal(err)
	}
	if in.Deriver != "" || in.CA != ca || len(in.References) != 0 || len(in.Sigs) != 0 {
		t.Errorf("%+v", in)
	}
}

func TestQueryPathInfo_Invalid(t *testing.T) {
	// A daemon ≥ 1.17 answers "not valid"; the connection stays in step.
	d := hello(38).u64(stderrLast, 0).u64(stderrLast)
	pathInfo(d, "", nil, nil, "")
	c, _, _ := newConn(t, d)
	_, err := c.QueryPathInfo(top)
	var ip *InvalidPathError
	if !errors.As(err, &ip) || ip.Path != top || !strings.Contains(err.Error(), top+" is not a valid path") {
		t.Fatalf("err %v", err)
	}
	if _, err := c.QueryPathInfo(dep); err != nil {
		t.Fatalf("after an invalid path: %v", err)
	}
}

func TestDaemonError_Forms(t *testing.T) {
	// Before 1.26: a message and a status. The connection stays usable.
	d := hello(21).u64(stderrError).str("error: \x1b[31;1mboom\x1b[0m\nsecond line\n").u64(1)
	pathInfo(d.u64(stderrLast), "", nil, nil, "")
	c, _, _ := newConn(t, d)
	_, err := c.QueryPathInfo(top)
	var de *DaemonError
	if !errors.As(err, &de) || de.Status != 1 || err.Error() != "nix-daemon: error: boom; second line" {
		t.Fatalf("err %v (%#v)", err, de)
	}
	if _, err := c.QueryPathInfo(top); err != nil {
		t.Fatalf("after a daemon error: %v", err)
	}

	// From 1.26: "Error", level, name, message, no position, traces.
	d = hello(34).u64(stderrError).str("Error").u64(0).str("Error", "\x1b[35;1mcannot\x1b[0m do it").u64(0, 2, 0).str("while a").u64(0).str("while b")
	c, _, _ = newConn(t, d)
	_, err = c.QueryPathInfo(top)
	if !errors.As(err, &de) || de.Message != "cannot do it" || !slices.Equal(de.Traces, []string{"while a", "while b"}) || err.Error() != "nix-daemon: cannot do it" {
		t.Fatalf("err %v (%#v)", err, de)
	}

	// An old daemon's "is not valid" error is an invalid path, as in Nix's client.
	d = hello(34).u64(stderrError).str("Error").u64(0).str("Error", "path '"+top+"' is not valid").u64(0, 0)
	c, _, _ = newConn(t, d)
	var ip *InvalidPathError
	if _, err = c.QueryPathInfo(top); !errors.As(err, &ip) {
		t.Fatalf("err %v", err)
	}
}

func TestQueryPathInfo_DaemonGone(t *testing.T) {
	c, cn, _ := newConn(t, hello(38))
	cn.broken = true
	_, err := c.QueryPathInfo(top)
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("err %v", err)
	}
}

func TestQueryPathInfo_BadRequest(t *testing.T) {
	c, cn, _ := newConn(t, hello(38))
	cn.out.Reset()
	for _, p := range []string{"/tmp/7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-top", "7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-top", "/nix/store/short", "/nix/store/7nl41rq7vq2qabi6j89fxnfmyk3fx1zr-top/bin"} {
		if _, err := c.QueryPathInfo(p); !errors.Is(err, nixid.ErrInvalidStorePath) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if cn.out.Len() != 0 {
		t.Errorf("bad paths were sent to the daemon: %q", cn.out.Bytes())
	}
}

// TestProtocolErrors_Sticky: a malformed reply leaves the stream out of step;
// the error is returned again without reading further.
func TestProtocolErrors_Sticky(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply *stream
		want  string
	}{
		{"unknown message", new(stream).u64(0x1234), "unknown stderr message type 0x1234"},
		{"asks for input", new(stream).u64(stderrRead, 100), "asked for input"},
		{"sends output", new(stream).u64(stderrWrite).str("x"), "sent output"},
		{"bad field type", new(stream).u64(stderrResult, 1, 2, 1, 9), "unknown activity field type 9"},
		{"position", new(stream).u64(stderrError).str("Error").u64(0).str("Error", "m").u64(1), "sent an error position"},
		{"error type", new(stream).u64(stderrError).str("Exception"), `unexpected error type "Exception"`},
		{"hangs up", new(stream).u64(stderrLast, 1).str(drv), "nix-daemon closed the connection"},
		{"bool", new(stream).u64(stderrLast, 2), "2 is not a boolean"},
		{"padding", new(stream).u64(stderrLast, 1, 3).raw("abc\x00\x00\x00\x00\x01"), "non-zero padding"},
		{"bad hash", new(stream).u64(stderrLast, 1).str("", "sha256:nope"), "NAR hash of " + top},
		{"bad reference", new(stream).u64(stderrLast, 1).str("", hex.EncodeToString(narHash[:])).list("/nix/store/x"), "reference of " + top},
		{"bad deriver", new(stream).u64(stderrLast, 1).str("nonsense"), "deriver of " + top},
	} {
		d := hello(38)
		d.Write(tc.reply.Bytes())
		c, _, _ := newConn(t, d)
		_, err := c.QueryPathInfo(top)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
			continue
		}
		if _, err2 := c.QueryPathInfo(dep); err2 != err {
			t.Errorf("%s: second call: %v, want the first error again", tc.name, err2)
		}
	}
}

// TestHostile_HugeLengths: lengths and counts a hostile daemon announces are
// refused before anything is allocated for them.
func TestHostile_HugeLengths(t *testing.T) {
	hash := hex.EncodeToString(narHash[:])
	for _, tc := range []struct {
		name  string
		reply *stream
		want  string
	}{
		{"log line", new(stream).u64(stderrNext, 1<<62), "over the limit"},
		{"activity text", new(stream).u64(stderrStartActivity, 1, 1, 1, 1<<62), "over the limit"},
		{"activity fields", new(stream).u64(stderrStartActivity, 1, 1, 1).str("").u64(1 << 60), "over the limit"},
		{"error message", new(stream).u64(stderrError).str("Error").u64(0).str("Error").u64(1 << 61), "over the limit"},
		{"error traces", new(stream).u64(stderrError).str("Error").u64(0).str("Error", "m").u64(0, 1<<59), "over the limit"},
		{"deriver", new(stream).u64(stderrLast, 1, 1<<63), "over the limit"},
		{"hash", new(stream).u64(stderrLast, 1).str("").u64(1 << 40), "over the limit"},
		{"references", new(stream).u64(stderrLast, 1).str("", hash).u64(1 << 62), "over the limit"},
		{"reference", new(stream).u64(stderrLast, 1).str("", hash).u64(1, 1<<50), "over the limit"},
		{"signatures", new(stream).u64(stderrLast, 1).str("", hash).list().u64(0, 0, 0, 1<<62), "over the limit"},
		{"ca", new(stream).u64(stderrLast, 1).str("", hash).list().u64(0, 0, 0).list().u64(1 << 62), "over the limit"},
	} {
		d := hello(38)
		d.Write(tc.reply.Bytes())
		c, _, _ := newConn(t, d)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := c.QueryPathInfo(top)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: allocated %d bytes", tc.name, grew)
		}
	}
	// And in the handshake: a feature list of 2^60 entries.
	d := new(stream).u64(workerMagic2, 1<<8|38, 1<<60)
	if _, err := NewClient(&conn{in: bytes.NewReader(d.Bytes())}, nil); err == nil || !strings.Contains(err.Error(), "daemon features: 1152921504606846976 entries, over the limit") {
		t.Errorf("features: %v", err)
	}
}

func TestClosure(t *testing.T) {
	third := "/nix/store/qiwmmmgnk4xmy6mma2man57iwykzv7rg-f.txt"
	d := hello(38)
	// top → dep, third, top; dep → third; third → nothing.
	pathInfo(d.u64(stderrLast), drv, []string{dep, third, top}, nil, "")
	pathInfo(d.u64(stderrLast), "", []string{third}, nil, "")
	pathInfo(d.u64(stderrLast), "", nil, nil, "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h")
	c, cn, _ := newConn(t, d)
	cn.out.Reset()
	infos, err := c.Closure([]string{top, top})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range infos {
		got = append(got, in.Path)
	}
	if !slices.Equal(got, []string{top, dep, third}) {
		t.Fatalf("closure %q", got)
	}
	want := new(stream).u64(opQueryPathInfo).str(top).u64(opQueryPathInfo).str(dep).u64(opQueryPathInfo).str(third)
	if !bytes.Equal(cn.out.Bytes(), want.Bytes()) {
		t.Errorf("requests %q", cn.out.Bytes())
	}
	// References share the walk's strings: top's is the root passed in,
	// third's the copy first read (in top's references).
	if unsafe.StringData(infos[0].References[2]) != unsafe.StringData(top) ||
		unsafe.StringData(infos[1].References[0]) != unsafe.StringData(infos[0].References[1]) {
		t.Errorf("references are not shared: %q %q", infos[0].References, infos[1].References)
	}
}

func TestClosure_MissingReference(t *testing.T) {
	d := hello(38)
	pathInfo(d.u64(stderrLast), "", []string{dep}, nil, "")
	d.u64(stderrLast, 0)
	c, _, _ := newConn(t, d)
	_, err := c.Closure([]string{top})
	var ip *InvalidPathError
	if !errors.As(err, &ip) || ip.Path != dep {
		t.Fatalf("err %v", err)
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	_, _ = io.WriteString(tl, "error: \x1b[31mno\x1b[0m")
	_, _ = io.WriteString(tl, "\nsocket\n")
	if got := tl.String(); got != "socket" {
		t.Errorf("tail %q", got)
	}
}

// FuzzClient: any byte stream from a daemon gives an answer or an error, never
// a panic or an unbounded allocation.
func FuzzClient(f *testing.F) {
	f.Add(hello(21).Bytes())
	f.Add(pathInfo(hello(34).u64(stderrLast), drv, []string{dep}, []string{sig}, "").Bytes())
	f.Add(hello(38).u64(stderrError).str("Error").u64(0).str("Error", "m").u64(0, 1, 0).str("t").Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := NewClient(&conn{in: bytes.NewReader(b)}, func(string) {})
		if err != nil {
			return
		}
		_, _ = c.Closure([]string{top})
	})
}
