package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nixClient is one Nix release as users run it: Debian 12's nix-bin (2.8) on
// this machine, or a current one (Debian 13's 2.26) from the debootstrap
// chroot that `make test` makes (test/e2e/deps.sh). Commands for the chroot
// run in a private mount namespace (`unshare -m`) that sees this machine's
// /dev, a fresh /proc and the temp dir at the same path, so test files,
// netrc, keys, XDG_CACHE_HOME and the garret binary are shared, while the
// store (/nix) is the chroot's own. The network is the caller's: loopback, or
// an emulated host's namespace.
type nixClient struct {
	name string // "nix-2.8", "nix-2.26": subtest names
	root string // the chroot, or "" for this machine
}

// chrootDir is where deps.sh puts the current Nix.
func chrootDir() string {
	if d := os.Getenv("GARRET_NIX_CHROOT"); d != "" {
		return d
	}
	return "/var/cache/garret-test/nix-trixie"
}

// nixClients returns every Nix the tests run: 2.8 (required, see requireNix)
// and the chroot's current Nix. A missing chroot fails under CI and is
// skipped loudly otherwise.
func nixClients(t *testing.T) []nixClient {
	t.Helper()
	requireNix(t)
	clients := []nixClient{{name: "nix-2.8"}}
	root := chrootDir()
	why := ""
	if _, err := os.Stat(filepath.Join(root, "usr/bin/nix")); err != nil {
		why = fmt.Sprintf("no chroot at %s (test/e2e/deps.sh, run by make test, makes it): %v", root, err)
	} else if os.Geteuid() != 0 {
		why = "entering the chroot (unshare -m, mount, chroot) needs root"
	}
	if why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must test the current Nix too: %s", why)
		}
		t.Logf("!!! SKIPPING the current Nix (2.26): %s !!!", why)
		return clients
	}
	return append(clients, nixClient{name: "nix-2.26", root: root})
}

// forEachNix runs fn as a parallel subtest for every Nix client.
func forEachNix(t *testing.T, fn func(t *testing.T, nc nixClient)) {
	t.Helper()
	for _, nc := range nixClients(t) {
		t.Run(nc.name, func(t *testing.T) {
			t.Parallel()
			fn(t, nc)
		})
	}
}

// chrootScript enters the chroot: $1 the chroot, $2 the temp dir, $3 the
// working directory, then the command.
const chrootScript = `r=$1; tmp=$2; wd=$3; shift 3
mount --rbind /dev "$r/dev" && mount -t proc proc "$r/proc" && mkdir -p "$r$tmp" && mount --rbind "$tmp" "$r$tmp" &&
exec chroot "$r" /bin/sh -c 'cd "$0" && exec "$@"' "$wd" "$@"`

// argv returns the command line that runs name with args in this client's
// environment, in directory dir ("" = the caller's, or / in the chroot).
func (nc nixClient) argv(dir, name string, args ...string) []string {
	if nc.root == "" {
		return append([]string{name}, args...)
	}
	if dir == "" {
		dir = "/"
	}
	return append([]string{"unshare", "-m", "--", "/bin/sh", "-c", chrootScript, "sh", nc.root, os.TempDir(), dir, name}, args...)
}

// command is exec.CommandContext for this client on this machine, in dir.
func (nc nixClient) command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	a := nc.argv(dir, name, args...)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	if nc.root == "" {
		cmd.Dir = dir
	}
	return cmd
}

// run executes a command with this client, failing the test on error.
func (nc nixClient) run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return execute(t, nc.command(ctx, "", name, args...), env)
}

// runIn is run in a working directory.
func (nc nixClient) runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return execute(t, nc.command(ctx, dir, name, args...), env)
}

// fails executes a command that must fail, and returns its combined output.
func (nc nixClient) fails(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := nc.command(ctx, "", name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Fatalf("%s %s succeeded; it should have failed. Output:\n%s", name, strings.Join(args, " "), out.String())
	}
	return out.String()
}

// local runs this client's commands on this machine.
func (nc nixClient) local(t *testing.T) func(env []string, name string, args ...string) string {
	return func(env []string, name string, args ...string) string {
		t.Helper()
		return nc.run(t, env, name, args...)
	}
}

// file is the path on this machine of a file in the client's /nix/store.
func (nc nixClient) file(p string) string { return filepath.Join(nc.root, p) }
