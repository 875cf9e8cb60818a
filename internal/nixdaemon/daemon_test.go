package nixdaemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// nixConfig: single-user as root, no sandbox, no build users, no substituters.
const nixConfig = "experimental-features = nix-command\nsandbox = false\nbuild-users-group =\nsubstituters ="

// trixie is a chroot with Debian trixie's Nix 2.26 (made by `make test`).
const trixie = "/var/cache/garret-test/nix-trixie"

// nixHost is where the Nix commands and daemon of a test run.
type nixHost struct {
	hostDir string // a scratch directory on this machine
	dir     string // the same directory as the Nix commands see it
	command func(ctx context.Context, args ...string) *exec.Cmd
}

func (h *nixHost) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := h.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func (h *nixHost) start(t *testing.T) *Client {
	t.Helper()
	c, err := StartCommand(h.command(context.Background(), "nix-daemon", "--stdio"), func(s string) { t.Logf("nix-daemon: %s", s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// requireNix: tests that need Nix fail in CI without it and skip loudly
// elsewhere.
func requireNix(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"nix-daemon", "nix-build", "nix"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the real nix is required in CI (run `make test`, which installs nix-bin): %v", err)
			}
			t.Skipf("!!! SKIPPING: %s not found; install Debian's nix-bin (make test-deps) to run the nix-daemon tests !!!", bin)
		}
	}
}

func localHost(t *testing.T) *nixHost {
	requireNix(t)
	dir := t.TempDir()
	env := append(os.Environ(), "NIX_CONFIG="+nixConfig, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	return &nixHost{hostDir: dir, dir: dir, command: func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		return cmd
	}}
}

// trixieHost runs Nix 2.26 in the trixie chroot, in a private mount
// namespace with the scratch directory at /work.
func trixieHost(t *testing.T) *nixHost {
	if _, err := os.Stat(filepath.Join(trixie, "usr/bin/nix-daemon")); err != nil {
		t.Skipf("!!! SKIPPING: no Nix 2.26 chroot at %s (make test creates it): %v !!!", trixie, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPING: the Nix 2.26 chroot test needs root (unshare, mount, chroot) !!!")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("!!! SKIPPING: unshare not found: %v !!!", err)
	}
	dir := t.TempDir()
	script := `R=` + trixie + `; mkdir -p $R/work && mount --rbind /dev $R/dev && mount -t proc proc $R/proc &&
mount --bind "$GARRET_WORK" $R/work && exec chroot $R env NIX_CONFIG="$GARRET_NIX_CONFIG" XDG_CACHE_HOME=/work/cache "$@"`
	return &nixHost{hostDir: dir, dir: "/work", command: func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "unshare", append([]string{"-m", "sh", "-c", script, "sh"}, args...)...)
		cmd.Env = append(os.Environ(), "GARRET_WORK="+dir, "GARRET_NIX_CONFIG="+nixConfig)
		return cmd
	}}
}

func TestRealDaemon(t *testing.T) { checkAgainstCLI(t, localHost(t)) }

func TestRealDaemon_Nix226(t *testing.T) { checkAgainstCLI(t, trixieHost(t)) }

// TestStart spawns nix-daemon from PATH, as garret push does.
func TestStart(t *testing.T) {
	requireNix(t)
	t.Setenv("NIX_CONFIG", nixConfig)
	c, err := Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if maj, _ := c.ProtocolVersion(); maj != 1 {
		t.Errorf("protocol %d.x", maj)
	}
	_, err = c.QueryPathInfo(StoreDir() + "/00000000000000000000000000000000-garret-absent")
	var ip *InvalidPathError
	if !errors.As(err, &ip) {
		t.Errorf("absent path: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestStartCommand_Fails: a daemon that cannot start is reported with its
// exit status and what it said.
func TestStartCommand_Fails(t *testing.T) {
	cmd := exec.Command("sh", "-c", "echo \"error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Connection refused\" >&2; exit 1")
	_, err := StartCommand(cmd, nil)
	if err == nil || !strings.Contains(err.Error(), "nix-daemon closed the connection") || !strings.Contains(err.Error(), "exit status 1") ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("err %v", err)
	}
	if _, err := StartCommand(exec.Command("/nonexistent/nix-daemon", "--stdio"), nil); err == nil || !strings.Contains(err.Error(), "starting /nonexistent/nix-daemon --stdio") {
		t.Fatalf("err %v", err)
	}
}

// checkAgainstCLI builds a two-path closure, signs it, adds a
// content-addressed file, and compares what the daemon says with
// `nix path-info --json` and `nix-store -qR`.
func checkAgainstCLI(t *testing.T, h *nixHost) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	expr := fmt.Sprintf(`let
  dep = builtins.derivation { name = "garret-nixdaemon-dep"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; echo %s > $out/nonce"]; };
in builtins.derivation { name = "garret-nixdaemon-top"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; echo ${dep} > $out/dep"]; }
`, hex.EncodeToString(nonce[:]))
	write(t, filepath.Join(h.hostDir, "closure.nix"), expr)
	write(t, filepath.Join(h.hostDir, "file.txt"), "content-addressed "+hex.EncodeToString(nonce[:]))
	top := strings.TrimSpace(h.run(t, "nix-build", h.dir+"/closure.nix", "--no-out-link"))
	ca := strings.TrimSpace(h.run(t, "nix-store", "--add", h.dir+"/file.txt"))
	write(t, filepath.Join(h.hostDir, "key"), h.run(t, "nix", "key", "generate-secret", "--key-name", "garret-test-1"))
	h.run(t, "nix", "store", "sign", "--key-file", h.dir+"/key", top)
	closure := strings.Fields(h.run(t, "nix-store", "-qR", top))
	slices.Sort(closure)
	if len(closure) != 2 {
		t.Fatalf("closure of %s: %q", top, closure)
	}

	c := h.start(t)
	_, minor := c.ProtocolVersion()
	t.Logf("nix-daemon %q: daemon protocol %d.%d, negotiated 1.%d, trust %v", c.NixVersion(), c.daemon>>8, c.daemon&0xff, minor, c.Trust())

	want, err := parseCLIPathInfo([]byte(h.run(t, "nix", "path-info", "--json", top, closure[0], closure[1], ca)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(closure, ca) {
		got, err := c.QueryPathInfo(p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := compareCLI(got, want[p]); diff != "" {
			t.Errorf("%s: %s", p, diff)
		}
	}

	// The comparison is not vacuous: the fields that can be empty are not.
	topInfo, _ := c.QueryPathInfo(top)
	caInfo, _ := c.QueryPathInfo(ca)
	if topInfo.Deriver == "" || !topInfo.Ultimate || len(topInfo.References) != 1 ||
		!slices.ContainsFunc(topInfo.Sigs, func(s string) bool { return strings.HasPrefix(s, "garret-test-1:") }) {
		t.Errorf("top: %+v", topInfo)
	}
	if !strings.HasPrefix(caInfo.CA, "fixed:r:sha256:") {
		t.Errorf("%s: ca %q", ca, caInfo.CA)
	}

	infos, err := c.Closure([]string{top})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range infos {
		got = append(got, in.Path)
	}
	if got[0] != top || !slices.Equal(slices.Sorted(slices.Values(got)), closure) {
		t.Errorf("Closure: %q, nix-store -qR: %q", got, closure)
	}

	absent := filepath.Dir(top) + "/00000000000000000000000000000000-garret-absent"
	_, err = c.QueryPathInfo(absent)
	var ip *InvalidPathError
	if !errors.As(err, &ip) || ip.Path != absent {
		t.Errorf("absent path: %v", err)
	}
	if _, err := c.QueryPathInfo(top); err != nil {
		t.Errorf("after an absent path: %v", err)
	}
}

func write(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cliPathInfo is one path in `nix path-info --json`.
type cliPathInfo struct {
	NarHash          string   `json:"narHash"`
	NarSize          uint64   `json:"narSize"`
	References       []string `json:"references"`
	Deriver          *string  `json:"deriver"`
	RegistrationTime int64    `json:"registrationTime"`
	Ultimate         bool     `json:"ultimate"`
	Signatures       []string `json:"signatures"`
	CA               *string  `json:"ca"`
}

// parseCLIPathInfo reads `nix path-info --json` in both of its shapes: a list
// of objects with a "path" key (Nix < 2.19) or an object keyed by store path
// (Nix ≥ 2.19, where an invalid path maps to null).
func parseCLIPathInfo(b []byte) (map[string]cliPathInfo, error) {
	out := map[string]cliPathInfo{}
	var list []struct {
		Path string `json:"path"`
		cliPathInfo
	}
	if err := json.Unmarshal(b, &list); err == nil {
		for _, in := range list {
			out[in.Path] = in.cliPathInfo
		}
		return out, nil
	}
	var obj map[string]*cliPathInfo
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("nix path-info --json: neither a list nor an object keyed by path: %w", err)
	}
	for p, in := range obj {
		if in == nil {
			return nil, fmt.Errorf("nix path-info --json: %s is not valid", p)
		}
		out[p] = *in
	}
	return out, nil
}

// compareCLI describes how the daemon's info differs from the CLI's.
func compareCLI(got *PathInfo, want cliPathInfo) string {
	var diffs []string
	if h, err := nixid.ParseNarHash(want.NarHash); err != nil || h != got.NarHash {
		diffs = append(diffs, fmt.Sprintf("narHash %s, CLI %s (%v)", got.NarHash, want.NarHash, err))
	}
	if got.NarSize != want.NarSize {
		diffs = append(diffs, fmt.Sprintf("narSize %d, CLI %d", got.NarSize, want.NarSize))
	}
	if !slices.Equal(slices.Sorted(slices.Values(got.References)), slices.Sorted(slices.Values(want.References))) {
		diffs = append(diffs, fmt.Sprintf("references %q, CLI %q", got.References, want.References))
	}
	if d := deref(want.Deriver); got.Deriver != d {
		diffs = append(diffs, fmt.Sprintf("deriver %q, CLI %q", got.Deriver, d))
	}
	if got.RegistrationTime.Unix() != want.RegistrationTime {
		diffs = append(diffs, fmt.Sprintf("registrationTime %d, CLI %d", got.RegistrationTime.Unix(), want.RegistrationTime))
	}
	if got.Ultimate != want.Ultimate {
		diffs = append(diffs, fmt.Sprintf("ultimate %v, CLI %v", got.Ultimate, want.Ultimate))
	}
	if !slices.Equal(slices.Sorted(slices.Values(got.Sigs)), slices.Sorted(slices.Values(want.Signatures))) {
		diffs = append(diffs, fmt.Sprintf("sigs %q, CLI %q", got.Sigs, want.Signatures))
	}
	if c := deref(want.CA); got.CA != c {
		diffs = append(diffs, fmt.Sprintf("ca %q, CLI %q", got.CA, c))
	}
	return strings.Join(diffs, "; ")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestParseCLIPathInfo: the comparison helper reads both shapes, so the
// real-daemon tests compare like with like on every Nix.
func TestParseCLIPathInfo(t *testing.T) {
	old := `[{"path":"` + top + `","narHash":"sha256-J0q2K/yBXaqQtMJ1OuSWJ+YxI0z2XMSyw+mRK4KB2ew=","narSize":336,"references":["` + dep + `"],"deriver":"` + drv + `","registrationTime":1796285288,"ultimate":true,"signatures":["` + sig + `"]}]`
	cur := `{"` + top + `":{"ca":null,"deriver":"` + drv + `","narHash":"sha256-J0q2K/yBXaqQtMJ1OuSWJ+YxI0z2XMSyw+mRK4KB2ew=","narSize":336,"references":["` + dep + `"],"registrationTime":1796285288,"signatures":["` + sig + `"],"ultimate":true}}`
	h, _ := nixid.ParseNarHash("sha256-J0q2K/yBXaqQtMJ1OuSWJ+YxI0z2XMSyw+mRK4KB2ew=")
	want := &PathInfo{Path: top, Deriver: drv, NarHash: h, References: []string{dep}, RegistrationTime: time.Unix(1796285288, 0),
		NarSize: 336, Ultimate: true, Sigs: []string{sig}}
	for _, doc := range []string{old, cur} {
		m, err := parseCLIPathInfo([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if diff := compareCLI(want, m[top]); diff != "" {
			t.Errorf("%s: %s", doc, diff)
		}
		want.NarSize++
		if compareCLI(want, m[top]) == "" {
			t.Errorf("a different NAR size compared equal")
		}
		want.NarSize--
	}
	if _, err := parseCLIPathInfo([]byte(`{"` + top + `":null}`)); err == nil {
		t.Error("an invalid path's null was accepted")
	}
}

// TestStartCommand_SilentDaemon: a program that neither answers nor exits is
// killed once the handshake has failed, not left running.
func TestStartCommand_SilentDaemon(t *testing.T) {
	cmd := exec.Command("sh", "-c", "echo not a daemon; exec sleep 600")
	start := time.Now()
	_, err := StartCommand(cmd, nil)
	if err == nil || !strings.Contains(err.Error(), "not a Nix daemon") {
		t.Fatalf("err %v", err)
	}
	if cmd.ProcessState == nil {
		t.Fatal("the program is still running")
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %v", took)
	}
}
