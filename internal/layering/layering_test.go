package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/garret-cache/garret"

// layers is DESIGN.md's layer diagram, lowest first: a package imports only
// packages of lower layers. A package missing here fails the test, so a new
// package gets its place in the diagram when it is added. "x/..." is x and
// everything under it.
var layers = [][]string{
	// 0: wire types, the package map and small libraries without project imports
	// (test/e2e/wan: the WAN emulator, for the e2e tests and the benchmarks).
	{"api/v1", "replication", "internal/nixid", "internal/durable", "internal/humantime", "internal/diskspace",
		"internal/nixcompress", "internal/nar", "internal/logbridge", "internal/eventually", "internal/dialurl",
		"replication/placement", "test/e2e/wan"},
	// 1: Nix formats, the daemon client, configuration, tokens, the local chunk store.
	{"internal/narinfo", "internal/nixdaemon", "internal/serverconfig", "api/token", "chunkstore"},
	// 2: libp2p transport and protocols; gossip.
	{"replication/p2p", "replication/membership"},
	// 3: the Raft catalog.
	{"replication/catalog"},
	// 4: the cluster controller; garbage collection; the syncer; scrub and repair.
	{"replication/cluster", "replication/gc", "replication/syncer", "replication/repair"},
	// 5: the HTTP API.
	{"api"},
	// 6: wiring.
	{"node"},
	// 7: programs, benchmarks and tests (deploy: the deployment files' test;
	// deploy/grafana: the dashboard and its test).
	{"cmd/garret", "cmd/garretd", "bench/...", "test/...", "internal/layering", "replication/cluster/clustertest", "deploy",
		"deploy/grafana"},
}

// mayImportNode: only the programs and the end-to-end tests start nodes
// (and the dashboard's test, which checks its queries against a node).
var mayImportNode = []string{"cmd/garretd", "test/e2e", "deploy/grafana"}

func layerOf(pkg string) int {
	for i, l := range layers {
		for _, p := range l {
			if p == pkg || (strings.HasSuffix(p, "/...") && (pkg == strings.TrimSuffix(p, "/...") || strings.HasPrefix(pkg, strings.TrimSuffix(p, "...")))) {
				return i
			}
		}
	}
	return -1
}

// TestLayers builds the import graph of every package of the module with
// `go list -deps` and checks each import against the layers. Go's test
// cache cannot see what `go list` reads: run it with -count=1, as `make
// test` does.
func TestLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Module", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Module     *struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		checked++
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		from := layerOf(name)
		if from < 0 {
			t.Errorf("package %s is in no layer: give it one here and in DESIGN.md", name)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if to := layerOf(dep); to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): a package may import only lower layers", name, from, dep, to)
			}
			if dep == "node" && !contains(mayImportNode, name) {
				t.Errorf("%s imports node: only %v may", name, mayImportNode)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d packages of the module listed", checked)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
