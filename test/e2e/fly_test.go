package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/eventually"
)

// flyMachine is one emulated fly.io Machine: a network namespace on an IPv6
// bridge (the app's 6PN) running deploy/fly.toml's command for its process
// group.
type flyMachine struct {
	id, region, group, ip, ns string
	dir                       string
	cmd                       *exec.Cmd
	log                       *lockedBuffer
}

// TestFly_AppForms runs deploy/fly.toml's app as fly.io would, on this
// machine: four Machines (the seed and a node in ams, two nodes in sea), each
// in a network namespace whose only interface is on one IPv6 bridge standing
// for the app's private 6PN network (fdaa::/64, as fly's addresses), and a
// private IPv4 address the others cannot reach, as on fly, with
// the variables fly.io sets (FLY_REGION, FLY_MACHINE_ID, FLY_PRIVATE_IP,
// FLY_APP_NAME), the secrets fly secrets would set, deploy/fly/server.toml
// unchanged but for data-dir (the volume), and the command of its process
// group from fly.toml; the group's .internal name resolves to the seed as
// fly's DNS would. No latency is emulated. The app must form one cluster whose
// members carry their Machine's id and region and advertise their 6PN
// addresses, each answering fly's /readyz check.
func TestFly_AppForms(t *testing.T) {
	requireWAN(t)
	var fly struct {
		App       string
		Processes map[string]string
		Mounts    struct{ Destination string }
	}
	if _, err := toml.DecodeFile("../../deploy/fly.toml", &fly); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile("../../deploy/fly/server.toml")
	if err != nil {
		t.Fatal(err)
	}
	volume := fmt.Sprintf("\ndata-dir = %q\n", fly.Mounts.Destination)
	if !strings.Contains(string(text), volume) {
		t.Fatalf("deploy/fly/server.toml has no %q (the volume fly.toml mounts)", strings.TrimSpace(volume))
	}

	key := make([]byte, 64)
	_, _ = rand.Read(key)
	jwt, secret := base64.StdEncoding.EncodeToString(key), "fly-e2e-"+base64.RawURLEncoding.EncodeToString(key[:24])
	prefix := fmt.Sprintf("gfly%d-", os.Getpid()%100000)
	sw := prefix + "6pn"
	var machines []*flyMachine
	t.Cleanup(func() {
		for _, m := range machines {
			if m.cmd != nil && m.cmd.Process != nil {
				_ = m.cmd.Process.Kill()
				_ = m.cmd.Wait()
			}
			_ = exec.Command("ip", "netns", "del", m.ns).Run()
			_ = os.RemoveAll(filepath.Join("/etc/netns", m.ns))
			if t.Failed() {
				t.Logf("---- log of %s (%s, %s) ----\n%s", m.id, m.group, m.region, m.log)
			}
		}
		_ = exec.Command("ip", "netns", "del", sw).Run()
	})
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", sw)
	ip("-n", sw, "link", "add", "br0", "type", "bridge")
	ip("-n", sw, "link", "set", "br0", "up")
	for i, spec := range []struct{ id, region, group string }{
		{"148e21ea7e4589", "ams", "seed"}, {"3d8d9930a12389", "ams", "node"}, {"e82d921f7e0918", "sea", "node"}, {"6e82d42fe79787", "sea", "node"},
	} {
		m := &flyMachine{id: spec.id, region: spec.region, group: spec.group, ip: fmt.Sprintf("fdaa:0:18:a7b:7d:f066:b83b:%d", i+2),
			ns: prefix + spec.id, dir: t.TempDir(), log: &lockedBuffer{}}
		machines = append(machines, m)
		ip("netns", "add", m.ns)
		ip("link", "add", "eth0", "netns", m.ns, "type", "veth", "peer", "name", fmt.Sprintf("m%d", i), "netns", sw)
		ip("-n", sw, "link", "set", fmt.Sprintf("m%d", i), "master", "br0", "up")
		ip("-n", m.ns, "link", "set", "lo", "up")
		ip("-n", m.ns, "link", "set", "eth0", "up")
		ip("-n", m.ns, "addr", "add", m.ip+"/64", "dev", "eth0", "nodad")
		// A fly Machine also has a private IPv4 address no other Machine
		// can reach (fly's proxy uses it): what a node would advertise if
		// it guessed its address instead of taking FLY_PRIVATE_IP.
		ip("-n", m.ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
		ip("-n", m.ns, "link", "set", "eth1", "up")
		ip("-n", m.ns, "link", "set", "eth1p", "up")
		ip("-n", m.ns, "addr", "add", fmt.Sprintf("172.19.%d.2/29", i), "dev", "eth1")
	}
	// fly's .internal DNS, as far as the app uses it.
	hosts := "127.0.0.1 localhost\n::1 localhost\n" + machines[0].ip + " seed.process." + fly.App + ".internal\n"
	for _, m := range machines {
		etc := filepath.Join("/etc/netns", m.ns)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	secrets := []string{"GARRET_CLUSTER_SECRET=" + secret, "GARRET_SERVER_TOKEN_HS256_SECRET_BASE64=" + jwt}
	inMachine := func(ctx context.Context, m *flyMachine, name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", m.ns, name}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + m.dir, "XDG_CONFIG_HOME=" + filepath.Join(m.dir, "xdg"),
			"FLY_APP_NAME=" + fly.App, "FLY_REGION=" + m.region, "FLY_MACHINE_ID=" + m.id, "FLY_PRIVATE_IP=" + m.ip}, secrets...)
		return cmd
	}
	// fly's check: GET /readyz on internal_port.
	ready := func(m *flyMachine) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return inMachine(ctx, m, garretd, "healthcheck", "http://[::1]:8080/readyz").Run() == nil
	}
	start := func(m *flyMachine) {
		cfg := filepath.Join(m.dir, "server.toml")
		body := strings.Replace(string(text), volume, fmt.Sprintf("\ndata-dir = %q\n", filepath.Join(m.dir, "data")), 1)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		args := strings.Fields(strings.ReplaceAll(fly.Processes[m.group], "/etc/garret/server.toml", cfg))
		m.cmd = inMachine(context.Background(), m, garretd, args...)
		m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	start(machines[0])
	eventually.Within(t, 60*time.Second, "the seed ready", func() bool { return ready(machines[0]) })
	for _, m := range machines[1:] {
		start(m)
	}
	eventually.Within(t, 90*time.Second, "every Machine ready", func() bool {
		for _, m := range machines {
			if !ready(m) {
				return false
			}
		}
		return true
	})

	// The cluster as a Machine in sea sees it.
	admin := strings.TrimSpace(run(t, append(os.Environ(), secrets...), garretd, "make-token", "-f", filepath.Join(machines[0].dir, "server.toml"),
		"--sub", "fly-admin", "--validity", "1 hour", "--cluster-admin"))
	sea := machines[2]
	byName := map[string]v1.ClusterNode{}
	eventually.Within(t, 60*time.Second, "every Machine a Raft member, with its id and region", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if out, err := inMachine(ctx, sea, garret, "login", "fly", "http://[::1]:8080", admin).CombinedOutput(); err != nil {
			t.Logf("garret login: %v: %s", err, out)
			return false
		}
		out, err := inMachine(ctx, sea, garret, "cluster", "status", "--json").Output()
		var st v1.ClusterStatus
		if err != nil || json.Unmarshal(out, &st) != nil {
			return false
		}
		byName = map[string]v1.ClusterNode{}
		for _, n := range st.Nodes {
			byName[n.Name] = n
		}
		for _, m := range machines {
			if n := byName[m.id]; n.Region != m.region || (n.Role != "voter" && n.Role != "nonvoter") {
				return false
			}
		}
		return true
	})
	voters := map[string]int{}
	for _, m := range machines {
		if byName[m.id].Role == "voter" {
			voters[m.region]++
		}
		if !strings.Contains(m.log.String(), "from FLY_PRIVATE_IP") {
			t.Errorf("Machine %s did not log the 6PN address it advertises", m.id)
		}
	}
	if voters["ams"] == 0 || voters["sea"] == 0 {
		t.Errorf("voters by region: %v, want both regions", voters)
	}
}
