package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is written by exec's copier while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWatchStore builds a new path while `garret watch-store` runs and waits
// for it to appear in the cache.
func TestWatchStore(t *testing.T) {
	requireNix(t)
	s := newServer(t)
	home := t.TempDir()
	clientEnv := []string{"XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "HOME=" + home}
	tok := s.makeToken("--sub", "w", "--validity", "1 hour", "--pull", "*", "--push", "*", "--create-cache", "*")
	run(t, clientEnv, garret, "login", "local", s.url, tok)
	run(t, clientEnv, garret, "cache", "create", "watched", "--public")

	var out lockedBuffer
	w := exec.Command(garret, "watch-store", "watched")
	w.Env = append(os.Environ(), clientEnv...)
	w.Stdout, w.Stderr = &out, &out
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()
	time.Sleep(300 * time.Millisecond) // let the watch start before the build

	top, _ := buildClosure(t, hostNix, nixEnv(t, s.url, tok))
	hash := filepath.Base(top)[:32]
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "watched/" + hash + ".narinfo")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the cache; watch-store said:\n%s", top, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "Pushed") {
		t.Logf("watch-store output:\n%s", out.String())
	}
}
