package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/serverconfig"
)

// secretsEnv is what deploy/ puts in the environment instead of the config
// files: compose/cluster.env, fly secrets, the systemd EnvironmentFile and
// the NixOS module's environmentFile.
var secretsEnv = []string{
	"GARRET_SERVER_TOKEN_HS256_SECRET_BASE64=ZGVwbG95LXRlc3Qtc2lnbmluZy1rZXktbm90LWEtcmVhbC1vbmU=",
	"GARRET_CLUSTER_SECRET=deploy-test-cluster-secret-not-a-real-one",
}

// flyEnv is what fly.io sets in a Machine.
var flyEnv = []string{"FLY_REGION=sea", "FLY_MACHINE_ID=3d8d9930a12389", "FLY_PRIVATE_IP=fdaa:0:18:a7b:7d:f066:b83b:2", "FLY_APP_NAME=garret-example"}

// serverConfigs are every server.toml in deploy/, with the environment each
// runs in.
var serverConfigs = map[string][]string{
	"compose/eu-1.toml":   nil,
	"compose/us-1.toml":   nil,
	"compose/us-2.toml":   nil,
	"systemd/server.toml": nil,
	"fly/server.toml":     flyEnv,
}

// checkConfig runs garretd --mode check-config on path with env (and none
// of this process's GARRET_/ATTIC_/FLY_ variables).
func checkConfig(t *testing.T, path string, env []string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(garretd, "--config", path, "--mode", "check-config")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Env = append(cmd.Env, env...)
	return runCmd(t, cmd)
}

// load parses a server.toml as garretd does, in env.
func load(t *testing.T, path string, env []string) *serverconfig.Config {
	t.Helper()
	m := map[string]string{"HOME": "/nonexistent"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	c, err := serverconfig.Load(path, func(k string) string { return m[k] })
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestServerConfigs_PassCheckConfig: every server.toml in deploy/ passes
// garretd --mode check-config (the checks a starting node runs) with its
// secrets in the environment, warns about nothing, and fails without them:
// the files hold no secret.
func TestServerConfigs_PassCheckConfig(t *testing.T) {
	if len(serverConfigs) != 5 {
		t.Fatal("update serverConfigs")
	}
	found, _ := filepath.Glob("*/*.toml")
	for _, f := range found {
		if _, ok := serverConfigs[f]; !ok {
			t.Errorf("%s is not checked: add it to serverConfigs", f)
		}
	}
	for path, env := range serverConfigs {
		t.Run(path, func(t *testing.T) {
			stdout, stderr, code := checkConfig(t, path, append(append([]string{}, env...), secretsEnv...))
			if code != 0 || !strings.Contains(stdout, "is valid") {
				t.Fatalf("check-config: exit %d\n%s%s", code, stdout, stderr)
			}
			if strings.Contains(stderr, "level=WARN") {
				t.Errorf("check-config warns:\n%s", stderr)
			}
			_, stderr, code = checkConfig(t, path, env)
			if code == 0 || !strings.Contains(stderr, "no token signing key") {
				t.Errorf("without the environment's signing key: exit %d, %s", code, stderr)
			}
			_, stderr, code = checkConfig(t, path, append(append([]string{}, env...), secretsEnv[0]))
			if code == 0 || !strings.Contains(stderr, "needs [cluster] secret") {
				t.Errorf("without the environment's cluster secret: exit %d, %s", code, stderr)
			}
		})
	}
}

// TestFlyConfig_TakesTheMachinesValues: on a fly.io Machine, the shared
// server.toml gets the Machine's region, name and 6PN address, and says so.
func TestFlyConfig_TakesTheMachinesValues(t *testing.T) {
	c := load(t, "fly/server.toml", append(append([]string{}, flyEnv...), secretsEnv...))
	cl := c.Cluster
	if cl.Region != "sea" || cl.NodeName != "3d8d9930a12389" ||
		cl.GossipAdvertise != "[fdaa:0:18:a7b:7d:f066:b83b:2]:7946" || cl.P2PAdvertise != "[fdaa:0:18:a7b:7d:f066:b83b:2]:4001" {
		t.Fatalf("fly/server.toml on a Machine: %+v", cl)
	}
	_, stderr, code := checkConfig(t, "fly/server.toml", append(append([]string{}, flyEnv...), secretsEnv...))
	if code != 0 || !strings.Contains(stderr, `region = \"sea\" from FLY_REGION`) {
		t.Errorf("check-config does not log the values taken from fly.io: exit %d\n%s", code, stderr)
	}
}
