package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// garretd is the binary the tests build once from ./cmd/garretd.
var garretd string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "garret-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	garretd = filepath.Join(dir, "garretd")
	build := exec.Command("go", "build", "-trimpath", "-o", garretd, "../cmd/garretd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building garretd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool fails under CI when a tool the checks need is missing (`make
// test` installs it), and skips loudly otherwise.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run this check: %s not found (make test-deps installs Debian's %s): %v", name, pkg, err)
		}
		t.Skipf("!!! SKIPPING: %s not found; install Debian's %s (make test-deps) to check the deployment files !!!", name, pkg)
	}
	return p
}

// runCmd runs a command and returns its stdout, stderr and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", cmd, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// nixEnv is the environment nix-instantiate and nix run with here (no
// daemon, no sandbox, no substituters; see shared/reference/nix-protocol.md).
func nixEnv(t *testing.T) []string {
	conf := strings.Join([]string{"experimental-features = nix-command", "sandbox = false", "build-users-group =", "substituters ="}, "\n")
	return append(os.Environ(), "NIX_CONFIG="+conf, "XDG_CACHE_HOME="+t.TempDir())
}

// portOf is the port of a host:port address.
func portOf(t *testing.T, address string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(address)
	if err != nil {
		t.Fatalf("address %q: %v", address, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", address, err)
	}
	return n
}

// read returns a file of the repository (paths relative to deploy/).
func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
