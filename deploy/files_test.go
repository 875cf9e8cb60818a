package deploy

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// dockerfile is what the tests read from deploy/Dockerfile.
type dockerfile struct {
	text   string
	stages []string // "AS" names, in order
	expose []string // "8080/tcp", …
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	d := dockerfile{text: read(t, "Dockerfile")}
	for _, m := range regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)$`).FindAllStringSubmatch(d.text, -1) {
		d.stages = append(d.stages, m[1])
	}
	if m := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindStringSubmatch(d.text); m != nil {
		d.expose = strings.Fields(m[1])
	}
	return d
}

// TestDockerfile_BuildsAsTheMakefile: the image builds on golang:1.26-bookworm
// with the Makefile's build command, its default (last) stage runs as
// nonroot with /data as a volume and the config path deploy/ mounts, it
// exposes the ports the configs listen on, and its health check is
// garretd healthcheck.
func TestDockerfile_BuildsAsTheMakefile(t *testing.T) {
	d := readDockerfile(t)
	makefile := read(t, "../Makefile")
	if !strings.Contains(makefile, "CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD)") || !strings.Contains(makefile, "GOFLAGS_BUILD := -trimpath\n") {
		t.Fatal("the Makefile's build changed: update deploy/Dockerfile and deploy/nixos/package.nix to match, then this test")
	}
	if !strings.Contains(d.text, "ARG GO_IMAGE=golang:1.26-bookworm\n") || !strings.Contains(d.text, "CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/garretd ./cmd/garret") {
		t.Error("the build stage does not run the Makefile's build on golang:1.26-bookworm")
	}
	if !slices.Equal(d.stages, []string{"build", "root", "nonroot"}) {
		t.Errorf("stages %v: want build, root, nonroot (the default, last)", d.stages)
	}
	last := d.text[strings.LastIndex(d.text, "\nFROM "):]
	if !strings.Contains(last, "\nUSER 65532:65532\n") {
		t.Error("the default stage does not run as nonroot (65532)")
	}
	for _, want := range []string{"\nVOLUME /data\n", `CMD ["-f", "/etc/garret/server.toml"]`, `ENTRYPOINT ["/usr/local/bin/garretd"]`,
		`CMD ["/usr/local/bin/garretd", "healthcheck", "http://127.0.0.1:8080/readyz"]`, "--chown=65532:65532 /layout/ /"} {
		if !strings.Contains(d.text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ignore := read(t, "../.dockerignore")
	for _, want := range []string{".git", "/garretd", "bin"} {
		if !slices.Contains(strings.Fields(ignore), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

// exposes checks that the image exposes the ports a node config listens on.
func exposes(t *testing.T, d dockerfile, name string, listen, gossip, p2p string) {
	t.Helper()
	want := []string{strconv.Itoa(portOf(t, listen)) + "/tcp"}
	if gossip != "" {
		g := strconv.Itoa(portOf(t, gossip))
		want = append(want, g+"/tcp", g+"/udp")
	}
	if p2p != "" {
		want = append(want, strconv.Itoa(portOf(t, p2p))+"/tcp")
	}
	for _, w := range want {
		if !slices.Contains(d.expose, w) {
			t.Errorf("%s listens on %s, which the Dockerfile does not EXPOSE (%v)", name, w, d.expose)
		}
	}
}

type composeFile struct {
	Services map[string]struct {
		Build *struct{ Context, Dockerfile string }
		Image string
		// EnvFile is compose's env_file (a string here).
		EnvFile     string `yaml:"env_file"`
		Volumes     []string
		Ports       []string
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		Healthcheck struct{ Test []string }
		StopGrace   string `yaml:"stop_grace_period"`
	}
	Volumes map[string]any
}

// TestCompose_NodesAgree: compose.yaml's three nodes in two regions each
// have their own volume at the config's data-dir and their own server.toml
// at the image's config path; the published port, the health check and
// api-url agree with listen; exactly one node bootstraps and the others
// join its gossip address by service name; the secrets come from the env
// file that is kept out of git; the build uses the repository root.
func TestCompose_NodesAgree(t *testing.T) {
	var c composeFile
	if err := yaml.Unmarshal([]byte(read(t, "compose.yaml")), &c); err != nil {
		t.Fatal(err)
	}
	d := readDockerfile(t)
	if len(c.Services) != 3 {
		t.Fatalf("%d services, want 3", len(c.Services))
	}
	regions := map[string]int{}
	gossip := map[string]string{} // service → gossip-listen
	joins := map[string][]string{}
	for name, s := range c.Services {
		if s.Build == nil || s.Build.Context != ".." || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: build %+v, want context .. (the repository root) and deploy/Dockerfile", name, s.Build)
		}
		if s.EnvFile != "compose/cluster.env" {
			t.Errorf("%s: env_file %q", name, s.EnvFile)
		}
		if g, err := time.ParseDuration(s.StopGrace); err != nil || g <= 30*time.Second {
			t.Errorf("%s: stop_grace_period %q: garretd needs up to 30 s to shut down", name, s.StopGrace)
		}
		wantConf := "./compose/" + name + ".toml:/etc/garret/server.toml:ro"
		if !slices.Contains(s.Volumes, wantConf) || !slices.Contains(s.Volumes, name+"-data:/data") {
			t.Fatalf("%s: volumes %v, want %s and %s-data:/data", name, s.Volumes, wantConf, name)
		}
		if _, ok := c.Volumes[name+"-data"]; !ok {
			t.Errorf("%s: volume %s-data is not declared", name, name)
		}
		cfg := load(t, "compose/"+name+".toml", secretsEnv)
		if cfg.DataDir != "/data" || cfg.Cluster.NodeName != name {
			t.Errorf("%s: data-dir %q, node-name %q", name, cfg.DataDir, cfg.Cluster.NodeName)
		}
		listen := strconv.Itoa(portOf(t, cfg.Listen))
		if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":"+listen) {
			t.Fatalf("%s: ports %v do not publish listen's port %s", name, s.Ports, listen)
		}
		published := strings.TrimSuffix(s.Ports[0], ":"+listen)
		if cfg.Cluster.APIURL != "http://localhost:"+published+"/" {
			t.Errorf("%s: api-url %q is not the published port %s", name, cfg.Cluster.APIURL, published)
		}
		if want := []string{"CMD", "/usr/local/bin/garretd", "healthcheck", "http://127.0.0.1:" + listen + "/readyz"}; !slices.Equal(s.Healthcheck.Test, want) {
			t.Errorf("%s: healthcheck %v, want %v", name, s.Healthcheck.Test, want)
		}
		exposes(t, d, "compose/"+name+".toml", cfg.Listen, cfg.Cluster.GossipListen, cfg.Cluster.P2PListen)
		regions[cfg.Cluster.Region]++
		gossip[name], joins[name] = cfg.Cluster.GossipListen, cfg.Cluster.Join
	}
	if len(regions) != 2 {
		t.Errorf("regions %v, want two", regions)
	}
	var seeds []string
	for name, js := range joins {
		if len(js) == 0 {
			seeds = append(seeds, name)
			continue
		}
		for _, j := range js {
			host := j[:strings.LastIndex(j, ":")]
			if g, ok := gossip[host]; !ok || portOf(t, j) != portOf(t, g) {
				t.Errorf("%s joins %s, which is no service's gossip-listen port", name, j)
			}
			if dep, ok := c.Services[name].DependsOn[host]; !ok || dep.Condition != "service_healthy" {
				t.Errorf("%s joins %s but does not wait for it to be healthy", name, host)
			}
		}
	}
	if len(seeds) != 1 {
		t.Errorf("nodes without join (bootstrapping): %v, want exactly one", seeds)
	}
	if !slices.Contains(strings.Split(read(t, "../.gitignore"), "\n"), "/deploy/compose/cluster.env") {
		t.Error("compose/cluster.env (secrets) is not in .gitignore")
	}
}

type flyFile struct {
	App           string
	PrimaryRegion string `toml:"primary_region"`
	KillSignal    string `toml:"kill_signal"`
	KillTimeout   string `toml:"kill_timeout"`
	Processes     map[string]string
	Build         map[string]string
	Files         []struct {
		GuestPath string `toml:"guest_path"`
		LocalPath string `toml:"local_path"`
	}
	Mounts struct {
		Source, Destination string
		Processes           []string
	}
	HTTPService struct {
		InternalPort     int    `toml:"internal_port"`
		ForceHTTPS       bool   `toml:"force_https"`
		AutoStopMachines string `toml:"auto_stop_machines"`
		Processes        []string
		Checks           []struct{ Path, Method string }
	} `toml:"http_service"`
}

// TestFlyToml_AgreesWithItsConfig: fly.toml mounts a volume at the config's
// data-dir, sends HTTP to the config's listen port, checks /readyz, puts
// fly/server.toml where the processes read it, builds the Dockerfile's root
// stage, lets garretd shut down, keeps Machines running, and its nodes join
// the seed's gossip port over 6PN.
func TestFlyToml_AgreesWithItsConfig(t *testing.T) {
	var f flyFile
	md, err := toml.DecodeFile("fly.toml", &f)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Logf("keys not checked: %v", u)
	}
	env := append(append([]string{}, flyEnv...), secretsEnv...)
	cfg := load(t, "fly/server.toml", env)
	if f.Mounts.Destination != cfg.DataDir || f.Mounts.Source == "" {
		t.Errorf("[mounts] %+v, config data-dir %q", f.Mounts, cfg.DataDir)
	}
	if f.HTTPService.InternalPort != portOf(t, cfg.Listen) || !f.HTTPService.ForceHTTPS {
		t.Errorf("http_service internal_port %d (force_https %v), config listen %q", f.HTTPService.InternalPort, f.HTTPService.ForceHTTPS, cfg.Listen)
	}
	if len(f.HTTPService.Checks) != 1 || f.HTTPService.Checks[0].Path != "/readyz" {
		t.Errorf("http_service checks %+v, want one on /readyz", f.HTTPService.Checks)
	}
	if f.HTTPService.AutoStopMachines != "off" {
		t.Errorf("auto_stop_machines = %q: a stopped Machine leaves the Raft quorum and stops copying", f.HTTPService.AutoStopMachines)
	}
	if len(f.Files) != 1 || f.Files[0].GuestPath != "/etc/garret/server.toml" || f.Files[0].LocalPath != "deploy/fly/server.toml" {
		t.Fatalf("[[files]] %+v", f.Files)
	}
	if _, err := os.Stat("../" + f.Files[0].LocalPath); err != nil {
		t.Errorf("[[files]] local_path (relative to the repository root, where flyctl runs): %v", err)
	}
	if !slices.Contains(readDockerfile(t).stages, f.Build["build-target"]) {
		t.Errorf("[build] build-target %q is no Dockerfile stage", f.Build["build-target"])
	}
	if d, err := time.ParseDuration(f.KillTimeout); err != nil || d <= 30*time.Second || f.KillSignal != "SIGTERM" {
		t.Errorf("kill_signal %q, kill_timeout %q: garretd needs up to 30 s after SIGTERM", f.KillSignal, f.KillTimeout)
	}
	if len(f.Processes) != 2 || !slices.Equal(f.Mounts.Processes, []string{"seed", "node"}) || !slices.Equal(f.HTTPService.Processes, []string{"seed", "node"}) {
		t.Errorf("processes %v, mounts for %v, http for %v: want seed and node everywhere", f.Processes, f.Mounts.Processes, f.HTTPService.Processes)
	}
	for name, args := range f.Processes {
		if !strings.HasPrefix(args, "-f /etc/garret/server.toml") {
			t.Errorf("process %s = %q does not read the [[files]] config", name, args)
		}
	}
	wantJoin := "--join seed.process." + f.App + ".internal:" + strconv.Itoa(portOf(t, cfg.Cluster.GossipListen))
	if strings.Contains(f.Processes["seed"], "--join") || !strings.HasSuffix(f.Processes["node"], wantJoin) {
		t.Errorf("the seed must bootstrap and the nodes join it: seed %q, node %q (want %q)", f.Processes["seed"], f.Processes["node"], wantJoin)
	}
	exposes(t, readDockerfile(t), "fly/server.toml", cfg.Listen, cfg.Cluster.GossipListen, cfg.Cluster.P2PListen)
}

// dockerIgnored reports whether .dockerignore's patterns leave rel (a
// slash path from the repository root) out of the build context: a pattern
// matches the path or one of its parent directories, as Docker matches
// patterns without "**" or "!".
func dockerIgnored(rel string, patterns []string) bool {
	for _, p := range patterns {
		for dir := rel; dir != "."; dir = path.Dir(dir) {
			if ok, _ := path.Match(p, dir); ok {
				return true
			}
		}
	}
	return false
}

// TestDockerfile_ContextBuilds runs the Dockerfile's build stage without
// Docker: the repository as .dockerignore leaves it (the build context),
// then the stage's commands, `go mod download` and the Makefile's build of
// garretd and garret. It catches a .dockerignore that leaves out a file the
// build needs, or a go.sum the download would have to change.
func TestDockerfile_ContextBuilds(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(read(t, "../.dockerignore"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") || strings.Contains(l, "**") {
			t.Fatalf(".dockerignore pattern %q: this test models neither ! nor **", l)
		}
		patterns = append(patterns, strings.TrimPrefix(l, "/"))
	}
	ctx := t.TempDir()
	copied, left := 0, 0
	err := filepath.WalkDir("..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", p)
		if rel == "." {
			return nil
		}
		if dockerIgnored(filepath.ToSlash(rel), patterns) {
			left++
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		copied++
		dst := filepath.Join(ctx, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"garretd", ".git", "deploy/compose.yaml", "test/e2e/doc.go"} {
		if _, err := os.Stat(filepath.Join(ctx, gone)); err == nil {
			t.Errorf("%s is in the build context", gone)
		}
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
	for _, args := range [][]string{{"mod", "download"}, {"build", "-trimpath", "-o", "out/", "./cmd/garretd", "./cmd/garret"}} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = ctx, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the build context (%d files, %d left out): %v\n%s", strings.Join(args, " "), copied, left, err, out)
		}
	}
	for _, bin := range []string{"garretd", "garret"} {
		if _, err := os.Stat(filepath.Join(ctx, "out", bin)); err != nil {
			t.Errorf("the build made no %s: %v", bin, err)
		}
	}
}
