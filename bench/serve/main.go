// Command serve benchmarks a garretd node against nginx serving the same
// closure as written by `nix copy --to file://…?compression=zstd`: narinfo
// requests/s and NAR MiB/s side by side, and garretd's peak RSS during an
// 8-way `nix copy` push. It writes BENCHMARKS.md. Run it with `make bench`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	paths := flag.Int("paths", 48, "store paths in the closure")
	out := flag.String("out", "BENCHMARKS.md", "where to write the results")
	bin := flag.String("garretd", "bin/garretd", "garretd binary")
	dur := flag.Duration("duration", 3*time.Second, "duration of each read measurement")
	flag.Parse()
	if err := run(*paths, *out, *bin, *dur); err != nil {
		log.Fatal(err)
	}
}

type env struct {
	dir    string
	nixEnv []string
}

func run(nPaths int, out, bin string, dur time.Duration) error {
	dir, err := os.MkdirTemp("", "garret-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{dir: dir}
	e.nixEnv = append(os.Environ(), "NIX_CONFIG=experimental-features = nix-command\nsandbox = false\nbuild-users-group =\nsubstituters =\nnarinfo-cache-negative-ttl = 0\nnarinfo-cache-positive-ttl = 0",
		"XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))

	log.Printf("building a closure of %d paths", nPaths)
	storePaths, narBytes, err := e.buildClosure(nPaths)
	if err != nil {
		return err
	}
	log.Printf("closure: %d paths, %.1f MiB of NAR", len(storePaths), float64(narBytes)/(1<<20))

	g, err := startGarret(dir, bin)
	if err != nil {
		return err
	}
	defer g.stop()
	if err := g.createPublicCache("bench"); err != nil {
		return err
	}
	log.Print("8-way push with nix copy")
	pushTime, peakRSS, err := e.push8(g, storePaths)
	if err != nil {
		return err
	}

	fileCache := filepath.Join(dir, "filecache")
	log.Print("nix copy --to file:// for nginx")
	if _, err := e.nix("nix", append([]string{"copy", "--to", "file://" + fileCache + "?compression=zstd"}, storePaths...)...); err != nil {
		return err
	}
	ng, err := startNginx(dir, fileCache)
	if err != nil {
		return err
	}
	defer ng.stop()

	hashes := make([]string, len(storePaths))
	for i, p := range storePaths {
		hashes[i] = filepath.Base(p)[:32]
	}
	servers := []struct{ name, base string }{{"garretd", g.url + "bench/"}, {"nginx (nix copy file:// zstd)", ng.url}}
	var rows []row
	for _, s := range servers {
		r := row{name: s.name}
		log.Printf("measuring %s", s.name)
		if r.narinfoPerSec, err = narinfoRate(s.base, hashes, dur); err != nil {
			return err
		}
		for _, c := range []int{1, 4} {
			served, raw, err := narRate(s.base, hashes, c, dur)
			if err != nil {
				return err
			}
			r.narServed = append(r.narServed, served)
			r.narRaw = append(r.narRaw, raw)
		}
		rows = append(rows, r)
	}
	return writeReport(out, rows, len(storePaths), narBytes, pushTime, peakRSS)
}

func (e *env) nix(name string, args ...string) (string, error) {
	return e.nixWith(nil, name, args...)
}

// nixWith runs a nix command with extra environment variables.
func (e *env) nixWith(extra []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(append([]string{}, e.nixEnv...), extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args[:min(3, len(args))], " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// buildClosure builds independent paths mixing text (compressible) and
// random bytes, from 64 KiB to ~6 MiB each.
func (e *env) buildClosure(n int) ([]string, int64, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	var b strings.Builder
	b.WriteString("[\n")
	for i := range n {
		lines := 2000 + (i*i*997)%400000
		rnd := 16 + (i*7919)%2048
		fmt.Fprintf(&b, `(builtins.derivation { name = "bench-%d"; system = builtins.currentSystem; builder = "/bin/sh";
  args = ["-c" "/bin/mkdir $out; echo %s-%d > $out/id; /usr/bin/seq 1 %d > $out/seq; /bin/dd if=/dev/urandom of=$out/rnd bs=1024 count=%d 2>/dev/null"]; })
`, i, hex.EncodeToString(nonce[:]), i, lines, rnd)
	}
	b.WriteString("]\n")
	file := filepath.Join(e.dir, "closure.nix")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return nil, 0, err
	}
	outp, err := e.nix("nix-build", file, "--no-out-link")
	if err != nil {
		return nil, 0, err
	}
	paths := strings.Fields(outp)
	sizes, err := e.nix("nix", append([]string{"path-info", "--json"}, paths...)...)
	if err != nil {
		return nil, 0, err
	}
	var infos []struct {
		NarSize int64 `json:"narSize"`
	}
	if err := json.Unmarshal([]byte(sizes), &infos); err != nil {
		return nil, 0, err
	}
	var total int64
	for _, i := range infos {
		total += i.NarSize
	}
	return paths, total, nil
}

type garret struct {
	cmd   *exec.Cmd
	url   string
	token string
	cfg   string
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startGarret(dir, bin string) (*garret, error) {
	secret := make([]byte, 64)
	_, _ = rand.Read(secret)
	port := freePort()
	cfg := filepath.Join(dir, "server.toml")
	text := fmt.Sprintf("listen = \"127.0.0.1:%d\"\ndata-dir = %q\n[jwt.signing]\ntoken-hs256-secret-base64 = %q\n",
		port, filepath.Join(dir, "garret-data"), base64.StdEncoding.EncodeToString(secret))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return nil, err
	}
	g := &garret{url: fmt.Sprintf("http://127.0.0.1:%d/", port), cfg: cfg}
	tok, err := exec.Command(bin, "make-token", "-f", cfg, "--sub", "bench", "--validity", "1 hour",
		"--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*").Output()
	if err != nil {
		return nil, fmt.Errorf("make-token: %w", err)
	}
	g.token = strings.TrimSpace(string(tok))
	g.cmd = exec.Command(bin, "-f", cfg)
	g.cmd.Stderr = io.Discard
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	for range 600 {
		if resp, err := http.Get(g.url); err == nil {
			resp.Body.Close()
			return g, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("garretd did not start")
}

func (g *garret) stop() {
	_ = g.cmd.Process.Signal(os.Interrupt)
	_ = g.cmd.Wait()
}

func (g *garret) createPublicCache(name string) error {
	body := `{"keypair":"Generate","is_public":true,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}`
	req, _ := http.NewRequest("POST", g.url+"_api/v1/cache-config/"+name, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("create cache: %s", resp.Status)
	}
	return nil
}

// peakRSS reads VmHWM (the process's peak resident set) in KiB.
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// push8 runs 8 concurrent `nix copy --to garret?compression=zstd` over
// disjoint parts of the closure, authenticated through a netrc.
func (e *env) push8(g *garret, paths []string) (time.Duration, int64, error) {
	netrc := filepath.Join(e.dir, "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1\npassword "+g.token+"\n"), 0o600); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		var part []string
		for i := w; i < len(paths); i += 8 {
			part = append(part, paths[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"copy", "--option", "netrc-file", netrc, "--to", g.url + "upload/bench?compression=zstd"}, part...)
			// Each nix process needs its own narinfo cache database.
			cache := "XDG_CACHE_HOME=" + filepath.Join(e.dir, fmt.Sprintf("xdg-cache-%d", w))
			if _, err := e.nixWith([]string{cache}, "nix", args...); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	return time.Since(start), peakRSS(g.cmd.Process.Pid), nil
}

type nginx struct {
	cmd *exec.Cmd
	url string
}

func startNginx(dir, root string) (*nginx, error) {
	port := freePort()
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off; user root; worker_processes %d; error_log %s/logs/error.log; pid %s/nginx.pid;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; application/x-nix-nar zst; }
  server { listen 127.0.0.1:%d; root %s; } }
`, runtime.NumCPU(), prefix, prefix, port, root)
	cf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	bin := "nginx"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/nginx"
	}
	n := &nginx{cmd: exec.Command(bin, "-p", prefix, "-c", cf), url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nginx (apt-get install nginx-light): %w", err)
	}
	for range 200 {
		if resp, err := http.Get(n.url + "nix-cache-info"); err == nil {
			resp.Body.Close()
			return n, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil, fmt.Errorf("nginx did not start")
}

func (n *nginx) stop() {
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

func get(url string, w io.Writer) (int64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.Copy(w, resp.Body)
}

// narinfoRate fetches every narinfo in turn over one keep-alive connection.
func narinfoRate(base string, hashes []string, dur time.Duration) (float64, error) {
	n := 0
	start := time.Now()
	for time.Since(start) < dur {
		for _, h := range hashes {
			if _, err := get(base+h+".narinfo", io.Discard); err != nil {
				return 0, err
			}
			n++
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// narRate downloads every NAR (URL and NarSize from its narinfo) with c
// workers; it reports served (compressed) and uncompressed MiB/s.
func narRate(base string, hashes []string, c int, dur time.Duration) (float64, float64, error) {
	type nar struct {
		url  string
		size int64
	}
	var nars []nar
	for _, h := range hashes {
		var b bytes.Buffer
		if _, err := get(base+h+".narinfo", &b); err != nil {
			return 0, 0, err
		}
		var n nar
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "URL: "); ok {
				n.url = base + v
			}
			if v, ok := strings.CutPrefix(line, "NarSize: "); ok {
				n.size, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		nars = append(nars, n)
	}
	var served, raw atomic.Int64
	var next atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := nars[int(next.Add(1))%len(nars)]
				k, err := get(n.url, io.Discard)
				if err != nil {
					errs <- err
					return
				}
				served.Add(k)
				raw.Add(n.size)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	secs := time.Since(start).Seconds()
	return float64(served.Load()) / (1 << 20) / secs, float64(raw.Load()) / (1 << 20) / secs, nil
}

type row struct {
	name              string
	narinfoPerSec     float64
	narServed, narRaw []float64
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown"
}

func writeReport(out string, rows []row, nPaths int, narBytes int64, push time.Duration, rssKiB int64) error {
	nixV, _ := exec.Command("nix", "--version").Output()
	ngV, _ := exec.Command("nginx", "-v").CombinedOutput()
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (bench/serve). Garret and its peer are measured in the same run, on the same machine.\n\n")
	fmt.Fprintf(&b, "- date: %s\n- machine: %d cores, %s, %s\n- clients: %s, %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		runtime.NumCPU(), cpuModel(), runtime.Version(), strings.TrimSpace(string(nixV)), strings.TrimSpace(string(ngV)))
	fmt.Fprintf(&b, "- closure: %d store paths, %.1f MiB of NAR (text + random data), pushed to garretd by 8 concurrent `nix copy --to …?compression=zstd`;\n  the peer is nginx serving the same closure written by `nix copy --to file://…?compression=zstd`.\n\n", nPaths, float64(narBytes)/(1<<20))
	fmt.Fprintf(&b, "## Reads (loopback, keep-alive)\n\n| server | narinfo req/s (sequential) | NAR c1 MiB/s served (NAR MiB/s) | NAR c4 MiB/s served (NAR MiB/s) |\n|---|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f (%.0f) | %.0f (%.0f) |\n", r.name, r.narinfoPerSec, r.narServed[0], r.narRaw[0], r.narServed[1], r.narRaw[1])
	}
	fmt.Fprintf(&b, "\n\"served\" is bytes on the wire (zstd); \"NAR\" is uncompressed NAR bytes delivered per second.\n\n")
	fmt.Fprintf(&b, "## 8-way push\n\n| metric | value |\n|---|---:|\n| wall time | %.1f s |\n| throughput (NAR bytes) | %.1f MiB/s |\n| garretd peak RSS (VmHWM) | %.1f MiB |\n| budget (DESIGN.md §7) | 128 MiB |\n",
		push.Seconds(), float64(narBytes)/(1<<20)/push.Seconds(), float64(rssKiB)/1024)
	return os.WriteFile(out, []byte(b.String()), 0o644)
}
