package nixdaemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Start runs `nix-daemon --stdio` (from PATH) and runs the handshake with it.
// Cancelling ctx kills the daemon. Close ends it.
func Start(ctx context.Context, log func(string)) (*Client, error) {
	return StartCommand(exec.CommandContext(ctx, "nix-daemon", "--stdio"), log)
}

// How long Close waits for the daemon to exit after its input is closed, and
// how long an error report waits for its exit status, before killing it.
const (
	exitWait  = 10 * time.Second
	diagWait  = 2 * time.Second
	stderrCap = 8 << 10
)

// StartCommand starts cmd, which must speak the worker protocol on its
// standard input and output (`nix-daemon --stdio`, possibly wrapped in
// ssh, sudo or a chroot), and runs the handshake. StartCommand sets cmd's
// Stdin, Stdout and Stderr; the last 8 KiB of its stderr are quoted in errors
// when it fails or hangs up. Close ends it.
func StartCommand(cmd *exec.Cmd, log func(string)) (*Client, error) {
	name := strings.Join(cmd.Args, " ")
	if len(name) > 80 {
		name = name[:77] + "..."
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("nixdaemon: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("nixdaemon: %w", err)
	}
	p := &process{name: name, cmd: cmd, stdin: inW, stdout: outR, stderr: &tail{max: stderrCap}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, p.stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("nixdaemon: starting %s: %w", name, err)
	}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	c, err := NewClient(struct {
		io.Reader
		io.Writer
	}{outR, inW}, log)
	if err != nil {
		diag := p.diagnose(diagWait)
		p.abort()
		return nil, fmt.Errorf("nixdaemon: %s: %w%s", name, err, diag)
	}
	c.closer = p
	c.diag = p.diagnose
	return c, nil
}

// process is a running daemon. Its pipes are ours, not exec's, so its exit
// never cuts short a read of what it wrote before exiting.
type process struct {
	name    string
	cmd     *exec.Cmd
	stdin   *os.File
	stdout  *os.File
	stderr  *tail
	done    chan struct{} // closed once Wait returns
	exitErr error
	once    sync.Once
	closed  error
}

// diagnose waits up to d for the daemon to exit after a failure and
// describes how it ended and what it said on stderr (or "" if it is still
// running and silent). It closes the daemon's input first: the conversation
// is over.
func (p *process) diagnose(d time.Duration) string {
	p.stdin.Close()
	var parts []string
	select {
	case <-p.done:
		if p.exitErr != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", p.name, p.exitErr))
		}
	case <-time.After(d):
	}
	if s := p.stderr.String(); s != "" {
		parts = append(parts, "stderr: "+s)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// abort kills the daemon if it is still running and releases its pipes.
func (p *process) abort() {
	p.stdin.Close()
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.stdout.Close()
}

// Close closes the daemon's input, waits for it to exit (killing it after
// 10 s) and reports a failed exit.
func (p *process) Close() error {
	p.once.Do(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(exitWait):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.stdout.Close()
		if p.exitErr != nil {
			p.closed = fmt.Errorf("nixdaemon: %s: %w%s", p.name, p.exitErr, p.stderrNote())
		}
	})
	return p.closed
}

func (p *process) stderrNote() string {
	if s := p.stderr.String(); s != "" {
		return " (stderr: " + s + ")"
	}
	return ""
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// Write keeps the end of p.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String is the kept text on one line, without terminal colours.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return oneLine(stripANSI(string(t.buf)))
}
