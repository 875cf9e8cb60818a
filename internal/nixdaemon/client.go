package nixdaemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Protocol constants from Nix's worker-protocol.hh.
const (
	workerMagic1 = 0x6e697863 // "cxin", client to daemon
	workerMagic2 = 0x6478696f // "oixd", daemon to client

	// clientVersion is the protocol we offer: 1.38, the first with feature
	// negotiation (Nix 2.24 on). We offer no features.
	clientVersion = 1<<8 | 38
	// minDaemonMinor is the oldest daemon we talk to: Nix 2.3.
	minDaemonMinor = 21

	stderrNext          = 0x6f6c6d67
	stderrRead          = 0x64617461
	stderrWrite         = 0x64617416
	stderrLast          = 0x616c7473
	stderrError         = 0x63787470
	stderrStartActivity = 0x53545254
	stderrStopActivity  = 0x53544f50
	stderrResult        = 0x52534c54
)

// Trust is whether the daemon trusts this client (sent from protocol 1.35).
type Trust uint8

// Trust values, in the wire's encoding.
const (
	TrustUnknown Trust = iota // the daemon is older than 1.35 or did not say
	Trusted
	NotTrusted
)

// String renders "unknown", "trusted" or "not trusted".
func (t Trust) String() string {
	switch t {
	case Trusted:
		return "trusted"
	case NotTrusted:
		return "not trusted"
	}
	return "unknown"
}

// DaemonError is a failure the daemon reported (STDERR_ERROR). The
// connection stays usable after one.
type DaemonError struct {
	// Message is Nix's message, without terminal colours.
	Message string
	// Traces are the "while …" lines of structured errors (protocol ≥ 1.26).
	Traces []string
	// Status is the exit status old daemons send with the message (< 1.26).
	Status uint64
}

// Error renders "nix-daemon: <message>" on one line.
func (e *DaemonError) Error() string { return "nix-daemon: " + oneLine(e.Message) }

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

// Client is one worker-protocol connection. Calls are serialised; it is
// safe for concurrent use.
type Client struct {
	mu         sync.Mutex
	c          wire
	log        func(string)
	daemon     uint64 // the daemon's protocol version
	version    uint64 // negotiated: min(ours, the daemon's)
	storeDir   string
	nixVersion string
	trust      Trust
	err        error // sticky: the stream is out of step
	closer     io.Closer
	// diag describes a spawned daemon's end, for errors where it hung up.
	diag func(time.Duration) string
}

// StoreDir is the Nix store's directory: $NIX_STORE_DIR, or /nix/store.
func StoreDir() string {
	if d := os.Getenv("NIX_STORE_DIR"); d != "" {
		return strings.TrimRight(d, "/")
	}
	return "/nix/store"
}

// NewClient runs the handshake over rw. log receives the daemon's log lines
// (it may be nil). Paths asked about must be in StoreDir(). Close closes rw
// if it is an io.Closer.
func NewClient(rw io.ReadWriter, log func(string)) (*Client, error) {
	c := &Client{c: wire{r: bufio.NewReaderSize(rw, 64<<10), w: bufio.NewWriterSize(rw, 16<<10)}, log: log, storeDir: StoreDir()}
	if cl, ok := rw.(io.Closer); ok {
		c.closer = cl
	}
	if err := c.handshake(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) minor() uint64 { return c.version & 0xff }

func (c *Client) handshake() error {
	w := &c.c
	w.putU64(workerMagic1)
	w.putU64(clientVersion)
	if err := w.flush(); err != nil {
		return err
	}
	magic, err := w.u64("handshake magic")
	if err != nil {
		return err
	}
	if magic != workerMagic2 {
		return fmt.Errorf("nixdaemon: not a Nix daemon: handshake magic %#x, want %#x", magic, workerMagic2)
	}
	daemon, err := w.u64("daemon protocol version")
	if err != nil {
		return err
	}
	if daemon>>8 != 1 || daemon > 0xffff {
		return fmt.Errorf("nixdaemon: nix-daemon speaks protocol %d.%d; only 1.x is supported", daemon>>8, daemon&0xff)
	}
	if daemon&0xff < minDaemonMinor {
		return fmt.Errorf("nixdaemon: nix-daemon speaks protocol 1.%d; garret needs 1.%d (Nix 2.3) or newer", daemon&0xff, minDaemonMinor)
	}
	c.daemon = daemon
	c.version = min(daemon, clientVersion)
	if c.minor() >= 38 {
		w.putStrings(nil) // our features: none
		if err := w.flush(); err != nil {
			return err
		}
		// The daemon's features; we use none, so they are read and dropped.
		if _, err := w.strings("daemon features", maxSmallSet, maxSmall); err != nil {
			return err
		}
	}
	w.putU64(0) // obsolete CPU affinity (≥ 1.14): none
	w.putU64(0) // obsolete reserveSpace (≥ 1.11)
	if err := w.flush(); err != nil {
		return err
	}
	if c.minor() >= 33 {
		if c.nixVersion, err = w.string("daemon Nix version", maxSmall); err != nil {
			return err
		}
	}
	if c.minor() >= 35 {
		t, err := w.u64("daemon trust")
		if err != nil {
			return err
		}
		if t > uint64(NotTrusted) {
			return fmt.Errorf("nixdaemon: reading daemon trust: %d is not 0, 1 or 2", t)
		}
		c.trust = Trust(t)
	}
	// Startup messages, or the reason the daemon cannot serve us.
	return c.stderrLoop()
}

// ProtocolVersion is the negotiated protocol: the lower of ours (1.38) and
// the daemon's.
func (c *Client) ProtocolVersion() (major, minor int) {
	return int(c.version >> 8), int(c.version & 0xff)
}

// NixVersion is the daemon's Nix version ("2.26.3"), or "" before protocol
// 1.33.
func (c *Client) NixVersion() string { return c.nixVersion }

// Trust is whether the daemon trusts us.
func (c *Client) Trust() Trust { return c.trust }

// Close closes the underlying stream if it is an io.Closer.
func (c *Client) Close() error {
	if c.closer == nil {
		return nil
	}
	return c.closer.Close()
}

// fail makes a wire or protocol error sticky and returns it.
func (c *Client) fail(err error) error {
	if c.err != nil {
		return c.err
	}
	if errors.Is(err, ErrClosed) && c.diag != nil {
		err = fmt.Errorf("%w%s", err, c.diag(diagWait))
	}
	c.err = err
	return err
}

// stderrLoop flushes the request and reads the daemon's messages up to
// STDERR_LAST (nil) or STDERR_ERROR (a *DaemonError). Any other error is a
// wire or protocol error.
func (c *Client) stderrLoop() error {
	w := &c.c
	if err := w.flush(); err != nil {
		return err
	}
	for {
		msg, err := w.u64("stderr message type")
		if err != nil {
			return err
		}
		switch msg {
		case stderrLast:
			return nil
		case stderrError:
			return c.readError()
		case stderrNext:
			s, err := w.string("log message", maxMessage)
			if err != nil {
				return err
			}
			if c.log != nil {
				c.log(strings.TrimRight(stripANSI(s), "\n"))
			}
		case stderrStartActivity:
			// id, level, type, text, fields, parent
			for _, what := range []string{"activity id", "activity level", "activity type"} {
				if _, err := w.u64(what); err != nil {
					return err
				}
			}
			if err := w.skip("activity text", maxMessage); err != nil {
				return err
			}
			if err := c.skipFields(); err != nil {
				return err
			}
			if _, err := w.u64("activity parent"); err != nil {
				return err
			}
		case stderrStopActivity:
			if _, err := w.u64("activity id"); err != nil {
				return err
			}
		case stderrResult:
			for _, what := range []string{"result activity id", "result type"} {
				if _, err := w.u64(what); err != nil {
					return err
				}
			}
			if err := c.skipFields(); err != nil {
				return err
			}
		case stderrRead:
			return fmt.Errorf("nixdaemon: nix-daemon asked for input (STDERR_READ) during an operation that sends none")
		case stderrWrite:
			return fmt.Errorf("nixdaemon: nix-daemon sent output (STDERR_WRITE) during an operation that expects none")
		default:
			return fmt.Errorf("nixdaemon: unknown stderr message type %#x from nix-daemon", msg)
		}
	}
}

// skipFields drops an activity's or result's fields: a count, then per field
// its type (0 int, 1 string) and value.
func (c *Client) skipFields() error {
	w := &c.c
	n, err := w.count("activity fields", maxSmallSet)
	if err != nil {
		return err
	}
	for range n {
		t, err := w.u64("field type")
		if err != nil {
			return err
		}
		switch t {
		case 0:
			_, err = w.u64("int field")
		case 1:
			err = w.skip("string field", maxMessage)
		default:
			err = fmt.Errorf("nixdaemon: unknown activity field type %d from nix-daemon", t)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readError reads STDERR_ERROR's payload: before 1.26 a message and an exit
// status; from 1.26 "Error", a level, an unused name, the message, a position
// flag that must be 0, and traces (each a position flag and a text).
func (c *Client) readError() error {
	w := &c.c
	if c.minor() < 26 {
		msg, err := w.string("error message", maxMessage)
		if err != nil {
			return err
		}
		status, err := w.u64("error status")
		if err != nil {
			return err
		}
		return &DaemonError{Message: stripANSI(msg), Status: status}
	}
	typ, err := w.string("error type", maxSmall)
	if err != nil {
		return err
	}
	if typ != "Error" {
		return fmt.Errorf("nixdaemon: unexpected error type %q from nix-daemon", typ)
	}
	if _, err := w.u64("error level"); err != nil {
		return err
	}
	if err := w.skip("error name", maxSmall); err != nil {
		return err
	}
	msg, err := w.string("error message", maxMessage)
	if err != nil {
		return err
	}
	if err := c.noPosition(); err != nil {
		return err
	}
	n, err := w.count("error traces", maxSmallSet)
	if err != nil {
		return err
	}
	e := &DaemonError{Message: stripANSI(msg)}
	for range n {
		if err := c.noPosition(); err != nil {
			return err
		}
		t, err := w.string("error trace", maxMessage)
		if err != nil {
			return err
		}
		e.Traces = append(e.Traces, stripANSI(t))
	}
	return e
}

// noPosition reads a position flag; Nix never sends positions over the wire.
func (c *Client) noPosition() error {
	p, err := c.c.u64("error position flag")
	if err == nil && p != 0 {
		err = fmt.Errorf("nixdaemon: nix-daemon sent an error position (%d); positions are not part of the protocol", p)
	}
	return err
}
