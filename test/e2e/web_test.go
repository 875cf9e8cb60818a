package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/eventually"
)

// requireChromium returns the headless browser's path: it fails under CI
// when Chromium is missing, and skips loudly otherwise.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run the browser test: chromium not found (run `make test`, which installs Debian's chromium)")
	}
	t.Skip("!!! SKIPPING: chromium not found; install Debian's chromium (make test-deps) to run the browser test !!!")
	return ""
}

// artifactDir is where the test's screenshots go: $GARRET_TEST_ARTIFACTS/<test>
// (make test sets it inside the clone), else a directory that outlives the
// test, named in the log.
func artifactDir(t *testing.T) string {
	t.Helper()
	var dir string
	if base := os.Getenv("GARRET_TEST_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "garret-e2e-"+t.Name()+"-"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// proxy forwards connections to 127.0.0.1 on this machine to the node's
// HTTP port on its emulated host, so a browser here can reach it; it
// returns the base URL, http://127.0.0.1:PORT.
func proxy(t *testing.T, nd *cnode) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				out, err := nd.host.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
				cancel()
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// browser starts headless Chromium (no sandbox: the tests run as root) and
// returns a context for its first tab.
func browser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-gpu", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// within runs one browser step with a deadline.
func within[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		// Say where the browser was and what it showed.
		page := context.WithoutCancel(ctx)
		page, cancel := context.WithTimeout(page, 5*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(page, chromedp.Location())
		body, _ := chromedp.Run(page, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v\nthe browser is at %s, showing:\n%s", what, err, loc, body)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := within(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// nodeHealth reads the cluster page's table: node name → health.
const nodeHealthJS = `Object.fromEntries([...document.querySelectorAll('#nodes tbody tr')].map(r => [r.dataset.node, r.dataset.health]))`

// TestWeb_BrowserClusterPage drives the web pages in headless Chromium
// against a real three-node, two-region cluster: the front page's cache
// and commands, the log-in form, the cluster page with every node and the
// leader, a node killed (-9) showing down within a bounded wait, and a
// `garret cluster status --web` link opened in a fresh browser context.
func TestWeb_BrowserClusterPage(t *testing.T) {
	chrome := requireChromium(t)
	c := newCluster(t, 60*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "eu-2", region: "eu"}, nodeSpec{name: "us-1", region: "us"})
	eu := c.node("eu-1")
	eu.createCache("web-demo")
	if st, body, err := eu.push("web-demo", newSynthPath("hello", 100_000)); err != nil || st != 200 {
		t.Fatalf("push: %d %s %v", st, body, err)
	}
	base := proxy(t, eu)
	dir := artifactDir(t)
	ctx := browser(t, chrome)

	// 1. The front page: the cache and the exact commands to use it.
	resp, err := eu.get("_api/v1/cache-config/web-demo", "")
	if err != nil {
		t.Fatal(err)
	}
	var cc v1.CacheConfig
	err = json.NewDecoder(resp.Body).Decode(&cc)
	resp.Body.Close()
	if err != nil || cc.PublicKey == nil {
		t.Fatalf("cache config: %v", err)
	}
	within(t, ctx, "open /", chromedp.Navigate(base+"/"))
	text := within(t, ctx, "front page text", chromedp.Text(chromedp.CSS("body")))
	for _, want := range []string{
		"web-demo", "garret login garret " + base + " TOKEN", "garret use web-demo",
		"substituters = " + base + "/web-demo", "trusted-public-keys = " + *cc.PublicKey,
		"nix copy --to '" + base + "/upload/web-demo?compression=zstd' PATH", "3 nodes alive",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the front page lacks %q:\n%s", want, text)
		}
	}
	screenshot(t, ctx, dir, "1-front-page.png")

	// 2. The cluster page sends us to the log-in form; a cluster-admin token
	// brings us back to it, with every node alive and the leader named.
	within(t, ctx, "open the cluster page", chromedp.Navigate(base+"/_garret/cluster"))
	within(t, ctx, "the log-in form", chromedp.WaitVisible(chromedp.CSS("#token")))
	admin := eu.makeToken("--sub", "web-admin", "--validity", "1 hour", "--cluster-admin")
	within(t, ctx, "type the token", chromedp.SetValue(chromedp.CSS("#token"), admin))
	screenshot(t, ctx, dir, "2-login.png")
	within(t, ctx, "log in", chromedp.Click(chromedp.CSS("#login-submit")))
	within(t, ctx, "the cluster map", chromedp.WaitVisible(chromedp.CSS("#cluster-map")))
	if loc := within(t, ctx, "location", chromedp.Location()); loc != base+"/_garret/cluster" {
		t.Fatalf("after log-in at %s", loc)
	}
	leader := eu.leader()
	eventually.Within(t, 30*time.Second, "every node alive and the leader on the page", func() bool {
		h, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](nodeHealthJS))
		if err != nil || len(h) != 3 || h["eu-1"] != "alive" || h["eu-2"] != "alive" || h["us-1"] != "alive" {
			return false
		}
		l, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#leader').textContent`))
		return err == nil && l == leader
	})
	if n := within(t, ctx, "nodes drawn", chromedp.Evaluate[int](`document.querySelectorAll('#cluster-map g.node').length`)); n != 3 {
		t.Fatalf("%d nodes drawn", n)
	}
	// Gossip measures RTTs with its probes (one member every 5 s at WAN
	// timings): the eu–us line gets its label within a few refreshes.
	eventually.Within(t, 40*time.Second, "the eu–us line labelled with an RTT", func() bool {
		rtt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#cluster-map text.rtt')].map(e => e.textContent).join()`))
		return err == nil && strings.HasSuffix(rtt, " ms")
	})
	screenshot(t, ctx, dir, "3-cluster.png")

	// 3. A node killed with -9 shows as down (suspect, then dead) within a
	// bounded wait: the page refreshes itself.
	victim := c.node("us-1")
	if leader == victim.name {
		victim = c.node("eu-2")
	}
	victim.kill()
	killed := time.Now()
	eventually.Within(t, 60*time.Second, victim.name+" down on the page", func() bool {
		h, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](nodeHealthJS))
		if err != nil {
			return false // reloading
		}
		gone, _ := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('#departed li[data-node=%q]').length`, victim.name)))
		return h[victim.name] == "suspect" || h[victim.name] == "dead" || gone == 1
	})
	t.Logf("%s shown down %v after the kill", victim.name, time.Since(killed).Round(100*time.Millisecond))
	screenshot(t, ctx, dir, "4-node-down.png")

	// 4. A signed link from `garret cluster status --web`, opened in a fresh
	// browser context (no cookie): it lands on the clean URL.
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir()}
	run(t, env, garret, "login", "e2e", base, admin)
	link := strings.TrimSpace(run(t, env, garret, "cluster", "status", "--web"))
	if !strings.HasPrefix(link, base+"/_garret/link?token=") {
		t.Fatalf("garret cluster status --web printed %q", link)
	}
	fresh, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	if err := chromedp.Do(fresh); err != nil { // opens its tab, for the steps' shorter contexts
		t.Fatalf("a fresh browser context: %v", err)
	}
	// It is not logged in: the cluster page sends it to the log-in form.
	within(t, fresh, "the cluster page, not logged in", chromedp.Navigate(base+"/_garret/cluster"))
	if loc := within(t, fresh, "location", chromedp.Location()); !strings.HasPrefix(loc, base+"/_garret/login?next=") {
		t.Fatalf("the fresh context is at %s, not at the log-in form", loc)
	}
	within(t, fresh, "open the link", chromedp.Navigate(link))
	within(t, fresh, "the cluster map via the link", chromedp.WaitVisible(chromedp.CSS("#cluster-map")))
	if loc := within(t, fresh, "location", chromedp.Location()); loc != base+"/_garret/cluster" {
		t.Fatalf("the link left us at %s", loc)
	}
	screenshot(t, fresh, dir, "5-web-link.png")
	// The link's token opens nothing on the API.
	resp, err = eu.get("_api/v1/cluster", link[strings.Index(link, "token=")+len("token="):])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("the link's token on the API: %d", resp.StatusCode)
	}
}
