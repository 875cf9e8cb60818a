package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/garret-cache/garret/test/e2e/wan"
)

// raiseNoFile raises this process's open-file limit, which garretd, nginx
// and wrk inherit: 1000 connections need more than the usual 1024 on both
// ends (and garretd its pebble files besides).
func raiseNoFile() {
	const want = 65536
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		log.Printf("getrlimit: %v", err)
		return
	}
	if l.Max < want && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
		return // root may raise the hard limit too
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		log.Printf("setrlimit: %v", err)
	}
	if l.Cur < 4096 {
		log.Printf("warning: only %d open files allowed; the 1000-connection runs will fail", l.Cur)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// garret is a garretd process with a data dir of its own.
type garret struct {
	cmd   *exec.Cmd
	url   string // http://127.0.0.1:PORT/, as seen from the host it runs on
	token string
	dir   string
	http  *http.Client // a client on that host
	host  *wan.Host    // nil: this machine
	bin   string       // garretd
	cfg   string       // server.toml
	args  []string     // garretd flags besides -f
	log   *os.File     // garretd.log, appended to by every start
	port  int
}

// nodeSpec is what startNode makes of a node beyond startGarret's defaults.
type nodeSpec struct {
	host      *wan.Host // an emulated WAN host to run on, on port; nil: this machine's loopback, a free port
	port      int
	extra     string   // TOML appended to the config (a [cluster] section)
	jwt       []byte   // HS256 token secret (nodes of a cluster share one); nil: a fresh one
	args      []string // more garretd flags
	tokenArgs []string // more make-token flags (--cluster-admin)
}

// startGarret starts a fresh node under dir/name with a token that may do
// everything, and waits until it answers.
func startGarret(s *suite, name string) (*garret, error) {
	var spec nodeSpec
	if s.opts.pprof != "" {
		spec.args = []string{"--pprof-listen", s.opts.pprof}
	}
	return startNode(s, name, spec)
}

// startNode is startGarret on spec's host, with its config, flags and token
// claims.
func startNode(s *suite, name string, spec nodeSpec) (*garret, error) {
	dir := filepath.Join(s.env.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	secret := spec.jwt
	if secret == nil {
		secret = make([]byte, 64)
		_, _ = rand.Read(secret)
	}
	g := &garret{dir: dir, host: spec.host, port: spec.port, http: http.DefaultClient,
		bin: s.opts.garretd, cfg: filepath.Join(dir, "server.toml"), args: spec.args}
	if spec.host == nil {
		var err error
		if g.port, err = freePort(); err != nil {
			return nil, err
		}
	} else {
		g.http = spec.host.HTTPClient()
	}
	g.url = fmt.Sprintf("http://127.0.0.1:%d/", g.port)
	if err := g.writeConfig(secret, spec.extra); err != nil {
		return nil, err
	}
	tok, err := exec.Command(s.opts.garretd, append([]string{"make-token", "-f", g.cfg, "--sub", "bench", "--validity", "1 day",
		"--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*"}, spec.tokenArgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("garretd make-token: %w", err)
	}
	g.token = strings.TrimSpace(string(tok))
	if g.log, err = os.Create(filepath.Join(dir, "garretd.log")); err != nil {
		return nil, err
	}
	s.onStop(func() { g.stop(); g.log.Close() })
	return g, g.start()
}

// writeConfig writes the node's server.toml: its listen address (every
// address of a WAN host, loopback here), data dir and token secret, then
// extra.
func (g *garret) writeConfig(jwt []byte, extra string) error {
	listen := "127.0.0.1"
	if g.host != nil {
		listen = "0.0.0.0"
	}
	text := fmt.Sprintf("listen = \"%s:%d\"\ndata-dir = %q\n[jwt.signing]\ntoken-hs256-secret-base64 = %q\n%s",
		listen, g.port, filepath.Join(g.dir, "data"), base64.StdEncoding.EncodeToString(jwt), extra)
	return os.WriteFile(g.cfg, []byte(text), 0o600)
}

// start runs garretd on the node's config and data dir and waits until it
// answers HTTP.
func (g *garret) start() error {
	args := append([]string{"-f", g.cfg}, g.args...)
	if g.host == nil {
		g.cmd = exec.Command(g.bin, args...)
	} else {
		g.cmd = g.host.Command(context.Background(), g.bin, args...)
	}
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		return err
	}
	for range 600 {
		if resp, err := g.http.Get(g.url + "healthz"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("garretd did not start (see %s)", g.log.Name())
}

// halt stops the node's process (once; killed if it takes over 20 s),
// keeping its data.
func (g *garret) halt() {
	if g.cmd == nil || g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	t := time.AfterFunc(20*time.Second, func() { _ = g.cmd.Process.Kill() })
	_ = g.cmd.Wait()
	t.Stop()
}

// stop stops the node and removes its data.
func (g *garret) stop() {
	g.halt()
	_ = os.RemoveAll(filepath.Join(g.dir, "data"))
}

func (g *garret) createPublicCache(name string) error {
	body := `{"keypair":"Generate","is_public":true,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`
	req, err := http.NewRequest("POST", g.url+"_api/v1/cache-config/"+name, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("create cache: %s", resp.Status)
	}
	return nil
}

// nginx serves a directory as static files, configured for 1000 keep-alive
// connections and nothing else (sendfile as Debian's default config has it).
type nginx struct {
	cmd *exec.Cmd
	url string
}

func startNginx(s *suite, root string) (*nginx, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Join(s.env.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, err
	}
	// backlog: nginx's default (511) is below the kernel's somaxconn, which
	// Go's listener uses; 1000 connections opening at once need the same for both.
	conf := fmt.Sprintf(`daemon off; user root; worker_processes %d; worker_rlimit_nofile 8192;
error_log %s/logs/error.log; pid %s/nginx.pid;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; application/x-nix-nar zst; }
  server { listen 127.0.0.1:%d backlog=4096; root %s; } }
`, runtime.NumCPU(), prefix, prefix, port, root)
	cf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	n := &nginx{cmd: exec.Command(nginxBin(), "-p", prefix, "-c", cf), url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nginx (bench/deps.sh installs it): %w", err)
	}
	s.onStop(n.stop)
	for range 200 {
		if resp, err := http.Get(n.url + "nix-cache-info"); err == nil {
			resp.Body.Close()
			return n, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil, fmt.Errorf("nginx did not start (see %s/logs/error.log)", prefix)
}

func nginxBin() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

func (n *nginx) stop() {
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGQUIT) // graceful: the master stops its workers
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
}

// pids is the process and its children (nginx's workers).
func pids(pid int) []int {
	out := []int{pid}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// peakRSS is the sum of the processes' VmHWM (peak resident set), bytes.
func peakRSS(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				sum += n << 10
			}
		}
		f.Close()
	}
	return sum
}

// resetPeakRSS makes VmHWM start again from the current RSS
// (proc(5): writing 5 to clear_refs resets the peak resident set size).
func resetPeakRSS(pids []int) error {
	for _, pid := range pids {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			return err
		}
	}
	return nil
}
