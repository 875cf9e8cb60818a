package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/serverconfig"
)

// configWith is a node config in dataDir with extra TOML appended.
func configWith(t *testing.T, dataDir, extra string) *serverconfig.Config {
	t.Helper()
	return loadTestConfig(t, dataDir, "127.0.0.1:0", extra)
}

// TestCheckConfig_FailsAsNewDoes: what serverconfig accepts but a component
// refuses fails CheckConfig with New's error, and New fails before it
// creates the data dir.
func TestCheckConfig_FailsAsNewDoes(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"max-size 128 MiB", "[chunking]\nmax-size = 134217728", "max-size = 134217728: chunkstore: MaxSize 134217728 above 67108864"},
		{"threshold above 64 MiB", "[chunking]\nnar-size-threshold = 100000000", "nar-size-threshold = 100000000"},
		{"threshold beyond the ingest buffers", "[chunking]\nnar-size-threshold = 33554432", "need MaxBytesInFlight >= 67108864, got 33554432 (it takes chunks up to 16777216 bytes)"},
		{"bad p2p-listen", "[cluster]\np2p-listen = \"nowhere\"", "node: [cluster] p2p-listen: p2p: address \"nowhere\""},
		{"bad gossip port", "[cluster]\ngossip-listen = \"127.0.0.1:gossip\"", `node: [cluster] gossip-listen "127.0.0.1:gossip": port "gossip" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			cfg := configWith(t, dataDir, tc.toml)
			checkErr := CheckConfig(cfg)
			if checkErr == nil || !strings.Contains(checkErr.Error(), tc.want) || strings.Contains(checkErr.Error(), "\n") {
				t.Fatalf("CheckConfig: %v; want one line containing %q", checkErr, tc.want)
			}
			_, err := start(t, cfg)
			if err == nil || err.Error() != checkErr.Error() {
				t.Fatalf("New: %v; CheckConfig said %v", err, checkErr)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Fatalf("New created the data dir before refusing the config: %v", err)
			}
		})
	}
	// The largest chunks the store takes pass both.
	if err := CheckConfig(configWith(t, t.TempDir(), "[chunking]\nmax-size = 16777216\nnar-size-threshold = 16777217")); err != nil {
		t.Fatalf("16 MiB chunks: %v", err)
	}
}

// TestPlan_PassesSoftDeleteToTheAPI: soft-delete-caches reaches the API,
// which puts it in the destroy command.
func TestPlan_PassesSoftDeleteToTheAPI(t *testing.T) {
	for _, soft := range []bool{true, false} {
		extra := ""
		if soft {
			extra = "soft-delete-caches = true"
		}
		p, err := newPlan(Config{Server: configWith(t, t.TempDir(), extra)})
		if err != nil || p.api.SoftDeleteCaches != soft {
			t.Fatalf("soft-delete-caches = %v: api config %+v, %v", soft, p.api, err)
		}
	}
}

// TestPlan_APIURLAndPriorityOffset: the API URL told to the other nodes is
// [cluster] api-url, else api-endpoint (else New's listen address); the
// priority offset reaches the API.
func TestPlan_APIURLAndPriorityOffset(t *testing.T) {
	for _, tc := range []struct {
		extra, wantURL string
		wantOffset     int32
	}{
		{"", "", 0},
		{"api-endpoint = \"https://eu-1.example/\"", "https://eu-1.example/", 0},
		{"api-endpoint = \"https://eu-1.example/\"\n[cluster]\napi-url = \"https://eu-1.direct.example\"\npriority-offset = 3",
			"https://eu-1.direct.example", 3},
	} {
		p, err := newPlan(Config{Server: configWith(t, t.TempDir(), tc.extra)})
		if err != nil || p.cluster.APIURL != tc.wantURL {
			t.Fatalf("%q: cluster API URL %q, want %q (%v)", tc.extra, p.cluster.APIURL, tc.wantURL, err)
		}
		if p.api.PriorityOffset != tc.wantOffset {
			t.Fatalf("%q: API priority offset %d, want %d", tc.extra, p.api.PriorityOffset, tc.wantOffset)
		}
	}
}

// TestTokenAuthority: the PEM serverconfig keeps as read is parsed here; a
// key that is not one is a one-line error naming the setting.
func TestTokenAuthority(t *testing.T) {
	for key, tok := range map[string]serverconfig.Token{
		"token-rs256-secret-base64": {RS256PrivatePEM: []byte("not a key")},
		"token-rs256-pubkey-base64": {RS256PublicPEM: []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
	} {
		_, err := TokenAuthority(&serverconfig.Config{Token: tok})
		if err == nil || !strings.HasPrefix(err.Error(), key+": ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", key, err)
		}
	}
	if _, err := TokenAuthority(&serverconfig.Config{Token: serverconfig.Token{HS256Secret: []byte("0123456789abcdef0123456789abcdef")}}); err != nil {
		t.Fatal(err)
	}
}
