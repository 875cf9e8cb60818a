package serverconfig

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
)

const template = `# Garret server config, generated on first start.
# Attic's server.toml keys work here with Attic's meaning.

# Where the HTTP API listens.
listen = "127.0.0.1:8080"

# The public URL of this node, ending with "/" (default: derived from the Host header).
#api-endpoint = "https://cache.example.com/"

# Garret keeps its Raft catalog and its chunk store here.
data-dir = %q

[jwt.signing]
# HS256 secret that signs and verifies tokens (every node of a cluster needs the same one).
token-hs256-secret-base64 = %q

[cluster]
# Shared by every node of a cluster; keys node-to-node encryption.
secret = %q

[chunking]
# NARs smaller than this are stored as one chunk.
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144

[compression]
# Chunks are stored as zstd frames; no level = fastest.
type = "zstd"

[garbage-collection]
interval = "12 hours"

[uploads]
# Memory the decompressors of all concurrent uploads may reserve together
# (xz dictionaries, zstd windows, …); an upload waits for its share.
decoder-memory = "256 MiB"
# Pushes are refused (507) while the data dir's filesystem has less free;
# reads and cache management keep working. 0 disables the check.
min-free-space = "1 GiB"
`

// WriteDefault writes a fresh config (mode 0600) at path and loads it.
func WriteDefault(path string, getenv func(string) string) (*Config, error) {
	secret := make([]byte, 64)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(xdg(getenv, "XDG_DATA_HOME", filepath.Join(".local", "share")), "garret")
	text := fmt.Sprintf(template, dataDir, base64.StdEncoding.EncodeToString(secret), rand.Text()+rand.Text())
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("serverconfig: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serverconfig: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return Load(path, getenv)
}
