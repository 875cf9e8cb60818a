package serverconfig

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const hs = `[jwt.signing]
token-hs256-secret-base64 = "c2VjcmV0"
`

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "server.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad_FlyIOGuide(t *testing.T) {
	c, err := Load("testdata/flyio.toml", env(map[string]string{"HOME": "/home/u"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "[::]:8080" || len(c.Token.HS256Secret) == 0 || c.GC.Interval != 12*time.Hour || c.Chunking.AvgSize != 65536 {
		t.Fatalf("config %+v", c)
	}
	if c.DataDir != "/home/u/.local/share/garret" {
		t.Fatalf("data dir %s", c.DataDir)
	}
	joined := strings.Join(c.Warnings, "\n")
	if !strings.Contains(joined, "[database] is ignored") || !strings.Contains(joined, "[storage] is ignored") {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

func TestLoad_NixOSGuideRS256FromEnv(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	c, err := Load(write(t, `listen = "127.0.0.1:8080"`+"\n"), env(map[string]string{
		"HOME": "/h", "ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64": base64.StdEncoding.EncodeToString(pemKey)}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Token.RS256PrivatePEM, pemKey) || c.Listen != "127.0.0.1:8080" {
		t.Fatalf("config %+v", c)
	}
}

func TestLoad_Errors(t *testing.T) {
	for name, text := range map[string]string{
		"no key":               `listen = "x"`,
		"two keys":             "[jwt.signing]\ntoken-hs256-secret-base64 = \"c2VjcmV0\"\ntoken-rs256-pubkey-base64 = \"c2VjcmV0\"\n",
		"bad base64":           "[jwt.signing]\ntoken-hs256-secret-base64 = \"!!!\"\n",
		"unknown top-level":    "lsiten = \"x\"\n" + hs,
		"bad compression":      "[compression]\ntype = \"lz4\"\n" + hs,
		"bad chunking":         "[chunking]\nmin-size = 100000\n" + hs,
		"bad interval":         "[garbage-collection]\ninterval = \"soon\"\n" + hs,
		"short cluster secret": "[cluster]\nsecret = \"short\"\n" + hs,
		"four voters":          "[cluster]\nvoters = 4\n" + hs,
		"one voter":            "[cluster]\nvoters = 1\n" + hs,
		"voters not a number":  "[cluster]\nvoters = \"five\"\n" + hs,
		"zero copies":          "[cluster]\ncopies-per-region = 0\n" + hs,
		"sync not a bool":      "[cluster]\nsync = \"no\"\n" + hs,
		"zero min copies":      "[cluster]\nmin-copies-before-ack = 0\n" + hs,
		"negative priority":    "[cluster]\npriority-offset = -1\n" + hs,
		"huge priority":        "[cluster]\npriority-offset = 1001\n" + hs,
		"not toml":             "= = =",
	} {
		if _, err := Load(write(t, text), env(map[string]string{"HOME": "/h"})); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoad_EndpointWithoutSlash(t *testing.T) {
	c, err := Load(write(t, "api-endpoint = \"https://cache.example.com/attic\"\nsubstituter-endpoint = \"https://nix.example.com\"\n"+hs), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIEndpoint != "https://cache.example.com/attic/" || c.SubstituterEndpoint != "https://nix.example.com/" {
		t.Fatalf("endpoints %q %q", c.APIEndpoint, c.SubstituterEndpoint)
	}
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], `api-endpoint "https://cache.example.com/attic" does not end with a slash: using "https://cache.example.com/attic/"`) ||
		!strings.Contains(c.Warnings[1], "substituter-endpoint") {
		t.Fatalf("warnings %q", c.Warnings)
	}
	// With the slash: as written, no warning.
	c, err = Load(write(t, "api-endpoint = \"https://cache.example.com/\"\n"+hs), env(map[string]string{"HOME": "/h"}))
	if err != nil || c.APIEndpoint != "https://cache.example.com/" || len(c.Warnings) != 0 {
		t.Fatalf("with slash: %q %q %v", c.APIEndpoint, c.Warnings, err)
	}
}

func TestLoad_NarSizeThresholdZero(t *testing.T) {
	c, err := Load(write(t, "[chunking]\nnar-size-threshold = 0\nmin-size = 16384\navg-size = 65536\nmax-size = 262144\n"+hs), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Chunking.NarSizeThreshold != 0 || len(c.Warnings) != 1 ||
		!strings.Contains(c.Warnings[0], "nar-size-threshold = 0 (Attic: store new NARs unchunked) acts as 1") ||
		!strings.Contains(c.Warnings[0], "still deduplicated") {
		t.Fatalf("threshold %d, warnings %q", c.Chunking.NarSizeThreshold, c.Warnings)
	}
	if c, err := Load(write(t, "[chunking]\nnar-size-threshold = 1\n"+hs), env(map[string]string{"HOME": "/h"})); err != nil || len(c.Warnings) != 0 {
		t.Fatalf("threshold 1: %q %v", c.Warnings, err)
	}
}

func TestLoad_ClusterVoters(t *testing.T) {
	for text, want := range map[string]int{hs: 3, "[cluster]\nvoters = 3\n" + hs: 3, "[cluster]\nvoters = 5\n" + hs: 5} {
		c, err := Load(write(t, text), env(map[string]string{"HOME": "/h"}))
		if err != nil || c.Cluster.Voters != want {
			t.Fatalf("%q: voters %d, %v; want %d", text, c.Cluster.Voters, err, want)
		}
	}
	_, err := Load(write(t, "[cluster]\nvoters = 4\n"+hs), env(map[string]string{"HOME": "/h"}))
	if err == nil || !strings.Contains(err.Error(), "voters = 4: must be 3 or 5") {
		t.Fatalf("voters = 4: %v", err)
	}
}

func TestLoad_ClusterCopiesAndSync(t *testing.T) {
	c, err := Load(write(t, hs), env(map[string]string{"HOME": "/h"}))
	if err != nil || c.Cluster.CopiesPerRegion != 0 || c.Cluster.NoSync || c.Cluster.MinCopiesBeforeAck != 0 {
		t.Fatalf("defaults: %+v %v", c.Cluster, err)
	}
	c, err = Load(write(t, "[cluster]\ncopies-per-region = 2\nsync = false\nmin-copies-before-ack = 1\npriority-offset = 2\n"+hs), env(map[string]string{"HOME": "/h"}))
	if err != nil || c.Cluster.CopiesPerRegion != 2 || !c.Cluster.NoSync || c.Cluster.MinCopiesBeforeAck != 1 || c.Cluster.PriorityOffset != 2 {
		t.Fatalf("copies-per-region = 2, sync = false: %+v %v", c.Cluster, err)
	}
}

func TestLoad_EnvBase64AndMissing(t *testing.T) {
	e := map[string]string{"HOME": t.TempDir(), "ATTIC_SERVER_CONFIG_BASE64": base64.StdEncoding.EncodeToString([]byte(hs))}
	if _, err := Load("", env(e)); err != nil {
		t.Fatal(err)
	}
	delete(e, "ATTIC_SERVER_CONFIG_BASE64")
	if _, err := Load("", env(e)); err == nil || !strings.Contains(err.Error(), "no config") {
		t.Fatalf("missing config: %v", err)
	}
}

// TestLoad_AtticConfigWhenGarretHasNone: without -f, a config variable or
// Garret's own file, atticd's $XDG_CONFIG_HOME/attic/server.toml is used
// (its signing key keeps Attic's tokens valid) and Origin says why.
func TestLoad_AtticConfigWhenGarretHasNone(t *testing.T) {
	attic := "listen = \"127.0.0.1:9\"\n[database]\nurl = \"sqlite:///x\"\n[jwt.signing]\ntoken-hs256-secret-base64 = \"YXR0aWMtc2VjcmV0\"\n"
	home, xdgHome := t.TempDir(), t.TempDir()
	for name, tc := range map[string]struct {
		env  map[string]string
		dir  string // where Attic's config is
		want string
	}{
		"~/.config":        {map[string]string{"HOME": home}, filepath.Join(home, ".config"), filepath.Join(home, ".config", "attic", "server.toml")},
		"$XDG_CONFIG_HOME": {map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdgHome}, xdgHome, filepath.Join(xdgHome, "attic", "server.toml")},
	} {
		if err := os.MkdirAll(filepath.Join(tc.dir, "attic"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tc.dir, "attic", "server.toml"), []byte(attic), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load("", env(tc.env))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Path != tc.want || string(c.Token.HS256Secret) != "attic-secret" || c.Listen != "127.0.0.1:9" ||
			!strings.Contains(c.Origin, "no Garret config at "+DefaultPath(env(tc.env))+": using Attic's "+tc.want) {
			t.Fatalf("%s: path %s, origin %q, config %+v", name, c.Path, c.Origin, c)
		}
		// Garret's own config wins, and then nothing is said.
		if _, err := WriteDefault(DefaultPath(env(tc.env)), env(tc.env)); err != nil {
			t.Fatal(err)
		}
		if c, err := Load("", env(tc.env)); err != nil || c.Path != DefaultPath(env(tc.env)) || c.Origin != "" {
			t.Fatalf("%s: with a Garret config: %s %q %v", name, c.Path, c.Origin, err)
		}
	}
}

func TestWriteDefault_RoundTrip(t *testing.T) {
	home := t.TempDir()
	e := env(map[string]string{"HOME": home})
	p := DefaultPath(e)
	c, err := WriteDefault(p, e)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	if c.Uploads != (Uploads{DefaultDecoderMemory, DefaultMinFreeSpace}) {
		t.Fatalf("generated [uploads] %+v", c.Uploads)
	}
	if c.Listen != "127.0.0.1:8080" || len(c.Token.HS256Secret) != 64 || len(c.Cluster.Secret) < 32 || c.DataDir != filepath.Join(home, ".local/share/garret") {
		t.Fatalf("generated %+v", c)
	}
	again, err := Load("", e)
	if err != nil || string(again.Token.HS256Secret) != string(c.Token.HS256Secret) {
		t.Fatalf("reload: %v", err)
	}
	if _, err := WriteDefault(p, e); err == nil {
		t.Fatal("WriteDefault overwrote an existing config")
	}
}

func TestZstdLevel(t *testing.T) {
	lv := func(n int) *int { return &n }
	for _, tc := range []struct {
		level *int
		want  zstd.EncoderLevel
	}{{nil, zstd.SpeedFastest}, {lv(1), zstd.SpeedFastest}, {lv(3), zstd.SpeedDefault}, {lv(8), zstd.SpeedBetterCompression}, {lv(19), zstd.SpeedBestCompression}} {
		c := &Config{Compression: Compression{Level: tc.level}}
		if got := c.ZstdLevel(); got != tc.want {
			t.Errorf("level %v: %v, want %v", tc.level, got, tc.want)
		}
	}
}

func TestLoad_Uploads(t *testing.T) {
	c, err := Load(write(t, hs), env(map[string]string{"HOME": "/h"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Uploads.DecoderMemory != 256<<20 || c.Uploads.MinFreeSpace != 1<<30 {
		t.Fatalf("defaults %+v", c.Uploads)
	}
	for text, want := range map[string]Uploads{
		"decoder-memory = \"512 MiB\"\nmin-free-space = 0":         {512 << 20, 0},
		"decoder-memory = 16777216\nmin-free-space = \"2.5GiB\"":   {16 << 20, 5 << 29},
		"decoder-memory = \"64M\"\nmin-free-space = \"10 GB\"":     {64 << 20, 10e9},
		"decoder-memory = \"1 G\"\nmin-free-space = \"1048576 b\"": {1 << 30, 1 << 20},
		"decoder-memory = \"8 mib\"\nmin-free-space = \"100 KiB\"": {8 << 20, 100 << 10},
	} {
		c, err := Load(write(t, "[uploads]\n"+text+"\n"+hs), env(map[string]string{"HOME": "/h"}))
		if err != nil || c.Uploads != want {
			t.Errorf("%q: %+v, %v; want %+v", text, c.Uploads, err, want)
		}
	}
	for _, text := range []string{
		`decoder-memory = "lots"`, `decoder-memory = "12 parsecs"`, `decoder-memory = -1`,
		`decoder-memory = "1 MiB"`, `min-free-space = "-1 GiB"`, `min-free-space = true`, `min-free-space = "GiB"`,
	} {
		if _, err := Load(write(t, "[uploads]\n"+text+"\n"+hs), env(map[string]string{"HOME": "/h"})); err == nil || !strings.Contains(err.Error(), "[uploads]") {
			t.Errorf("%q: %v; want an error naming [uploads]", text, err)
		}
	}
}

func TestLoad_ClusterScrub(t *testing.T) {
	c, err := Load(write(t, hs), env(map[string]string{"HOME": "/h"}))
	if err != nil || c.Cluster.ScrubInterval != DefaultScrubInterval || c.Cluster.ScrubRate != DefaultScrubRate {
		t.Fatalf("defaults: %+v %v", c.Cluster, err)
	}
	for text, want := range map[string]Cluster{
		"scrub-interval = \"0\"":                            {ScrubInterval: 0, ScrubRate: DefaultScrubRate},
		"scrub-interval = \"3 days\"\nscrub-rate = 2097152": {ScrubInterval: 72 * time.Hour, ScrubRate: 2 << 20},
		"scrub-rate = \"64 MiB/s\"":                         {ScrubInterval: DefaultScrubInterval, ScrubRate: 64 << 20},
		"scrub-rate = \"100MB\"":                            {ScrubInterval: DefaultScrubInterval, ScrubRate: 100e6},
	} {
		c, err := Load(write(t, "[cluster]\n"+text+"\n"+hs), env(map[string]string{"HOME": "/h"}))
		if err != nil || c.Cluster.ScrubInterval != want.ScrubInterval || c.Cluster.ScrubRate != want.ScrubRate {
			t.Errorf("%s: %v %d, %v", text, c.Cluster.ScrubInterval, c.Cluster.ScrubRate, err)
		}
	}
	for text, msg := range map[string]string{
		"scrub-interval = \"soon\"":       "[cluster] scrub-interval",
		"scrub-interval = \"10 minutes\"": "at least 1 hour",
		"scrub-interval = 7":              "scrub-interval",
		"scrub-rate = \"fast\"":           "[cluster] scrub-rate",
		"scrub-rate = 1000":               "at least 1 MiB/s",
		"scrub-rate = -5":                 "[cluster] scrub-rate",
	} {
		_, err := Load(write(t, "[cluster]\n"+text+"\n"+hs), env(map[string]string{"HOME": "/h"}))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an error saying %q", text, err, msg)
		}
	}
}

// TestLoad_PriorityOffsetAndAPIURL: the two [cluster] keys garret use
// depends on are checked with an error naming the key and what it wants.
func TestLoad_PriorityOffsetAndAPIURL(t *testing.T) {
	c, err := Load(write(t, "[cluster]\npriority-offset = 1000\napi-url = \"https://us-1.example:8443/cache/\"\n"+hs), env(map[string]string{"HOME": "/h"}))
	if err != nil || c.Cluster.PriorityOffset != 1000 || c.Cluster.APIURL != "https://us-1.example:8443/cache/" {
		t.Fatalf("valid: %+v %v", c.Cluster, err)
	}
	for text, want := range map[string]string{
		"priority-offset = -1":            "[cluster] priority-offset = -1: must be from 0 to 1000",
		"priority-offset = 1001":          "[cluster] priority-offset = 1001: must be from 0 to 1000",
		`priority-offset = "2"`:           `"cluster.priority-offset"`,
		`api-url = "us-1.example"`:        `[cluster] api-url = "us-1.example": not an http(s) URL with a host`,
		`api-url = "http://0.0.0.0:8080"`: "0.0.0.0 is no address a client can dial",
	} {
		_, err := Load(write(t, "[cluster]\n"+text+"\n"+hs), env(map[string]string{"HOME": "/h"}))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", text, err, want)
		}
	}
}
