package serverconfig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ErrNoConfig means no config file or config variable was found.
var ErrNoConfig = errors.New("serverconfig: no config found")

// Chunking is Attic's [chunking].
type Chunking struct{ NarSizeThreshold, MinSize, AvgSize, MaxSize int }

// Compression is Attic's [compression].
type Compression struct {
	Type  string
	Level *int
}

// GC is Attic's [garbage-collection].
type GC struct{ Interval, DefaultRetentionPeriod time.Duration }

// Cluster is Garret's [cluster].
type Cluster struct {
	NodeName, Region, Secret        string
	GossipListen, GossipAdvertise   string
	P2PListen, P2PAdvertise, APIURL string
	Join                            []string
	Bootstrap, Voter                *bool
	// Voters is how many Raft voters the leader keeps (3 or 5); the other
	// voter-eligible nodes are non-voters.
	Voters int
	// CopiesPerRegion is how many nodes of each region hold every object
	// (0: every node holds everything).
	CopiesPerRegion int
	// NoSync (sync = false) makes a node hold only what it takes and what
	// it reads through: it copies nothing in the background.
	NoSync bool
	// MinCopiesBeforeAck is how many nodes must hold every chunk of a push
	// before it is acknowledged (0: the default, 2; never more than the
	// live nodes).
	MinCopiesBeforeAck int
	// PriorityOffset is added to every cache's priority in this node's
	// nix-cache-info (a node far from its users answers a higher one).
	PriorityOffset int
	// ScrubInterval is the time between scrubs of the node's chunks (every
	// node, a lone one too); 0 disables them (on demand only).
	ScrubInterval time.Duration
	// ScrubRate is the frame bytes per second a scrub reads.
	ScrubRate int64
}

// MaxPriorityOffset is the largest [cluster] priority-offset.
const MaxPriorityOffset = 1000

// Defaults of the scrub ([cluster] scrub-interval, scrub-rate) and the
// least values accepted.
const (
	DefaultScrubInterval = 7 * 24 * time.Hour
	DefaultScrubRate     = 32 << 20
	MinScrubInterval     = time.Hour
	MinScrubRate         = 1 << 20
)

// Uploads is Garret's [uploads]: what a node sets aside while it takes
// pushes.
type Uploads struct {
	// DecoderMemory is the memory the decoders of all concurrent uploads
	// may reserve for their windows and dictionaries, in bytes.
	DecoderMemory int64
	// MinFreeSpace is the free space on the data dir's filesystem below
	// which pushes are refused (507), in bytes; 0 never refuses.
	MinFreeSpace int64
}

// Defaults of [uploads].
const (
	DefaultDecoderMemory = 256 << 20
	DefaultMinFreeSpace  = 1 << 30
	// MinDecoderMemory is the smallest decoder-memory accepted: one xz
	// stream at Nix's default level (an 8 MiB dictionary) must fit.
	MinDecoderMemory = 8 << 20
)

// Config is a loaded server.toml.
type Config struct {
	Path string
	// Origin says why Path was used when Load fell back to Attic's own
	// config ("" otherwise); callers log it.
	Origin                           string
	Listen                           string
	APIEndpoint, SubstituterEndpoint string
	AllowedHosts                     []string
	SoftDeleteCaches                 bool
	RequireProofOfPossession         bool
	MaxNarInfoSize                   int
	DataDir                          string
	Token                            Token
	Chunking                         Chunking
	Compression                      Compression
	GC                               GC
	Cluster                          Cluster
	Uploads                          Uploads
	Warnings                         []string
	// Notes are values taken from the environment rather than the file
	// (fly.io's FLY_* variables); callers log them.
	Notes []string
}

// ZstdLevel maps [compression] to klauspost/zstd's levels. Chunks are always
// zstd frames. No level → fastest (Garret favours speed: Attic's default
// zstd 8 costs ~4× the CPU here); ≤2 fastest, 3–6 default, 7–12 better,
// ≥13 best.
func (c *Config) ZstdLevel() zstd.EncoderLevel {
	if c.Compression.Level == nil {
		return zstd.SpeedFastest
	}
	switch l := *c.Compression.Level; {
	case l <= 2:
		return zstd.SpeedFastest
	case l <= 6:
		return zstd.SpeedDefault
	case l <= 12:
		return zstd.SpeedBetterCompression
	default:
		return zstd.SpeedBestCompression
	}
}

// DefaultPath is $XDG_CONFIG_HOME/garret/server.toml.
func DefaultPath(getenv func(string) string) string {
	return filepath.Join(xdg(getenv, "XDG_CONFIG_HOME", ".config"), "garret", "server.toml")
}

// AtticPath is where atticd keeps its config: $XDG_CONFIG_HOME/attic/server.toml.
func AtticPath(getenv func(string) string) string {
	return filepath.Join(xdg(getenv, "XDG_CONFIG_HOME", ".config"), "attic", "server.toml")
}

func xdg(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, fallback)
}

// Load reads path, else GARRET_/ATTIC_SERVER_CONFIG_BASE64, else DefaultPath,
// else Attic's own config at AtticPath (so a server moved from atticd keeps
// its signing key, and every token it issued stays valid), saying so in
// Origin.
func Load(path string, getenv func(string) string) (*Config, error) {
	var data []byte
	var err error
	origin := ""
	switch {
	case path != "":
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("serverconfig: %w", err)
		}
	case getenv("GARRET_SERVER_CONFIG_BASE64") != "" || getenv("ATTIC_SERVER_CONFIG_BASE64") != "":
		v := getenv("GARRET_SERVER_CONFIG_BASE64")
		if v == "" {
			v = getenv("ATTIC_SERVER_CONFIG_BASE64")
		}
		if data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err != nil {
			return nil, fmt.Errorf("serverconfig: *_SERVER_CONFIG_BASE64 is not base64: %w", err)
		}
		path = "(environment)"
	default:
		path = DefaultPath(getenv)
		if data, err = os.ReadFile(path); errors.Is(err, os.ErrNotExist) {
			attic := AtticPath(getenv)
			if data, err = os.ReadFile(attic); errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w (looked for %s and Attic's %s)", ErrNoConfig, path, attic)
			} else if err != nil {
				return nil, fmt.Errorf("serverconfig: %w", err)
			}
			origin = fmt.Sprintf("no Garret config at %s: using Attic's %s, whose signing key keeps the tokens it issued valid", path, attic)
			path = attic
		} else if err != nil {
			return nil, fmt.Errorf("serverconfig: %w", err)
		}
	}
	cfg, err := parse(string(data), getenv)
	if err != nil {
		return nil, fmt.Errorf("serverconfig: %s: %w", path, err)
	}
	cfg.Path, cfg.Origin = path, origin
	return cfg, nil
}

// Token is [jwt] and the token signing key as configured. The key's PEM is
// parsed where tokens are made (node.TokenAuthority, with api/token), which
// keeps this package below the API; exactly one key field is set.
type Token struct {
	HS256Secret     []byte
	RS256PrivatePEM []byte // token-rs256-secret-base64, decoded: signs and verifies
	RS256PublicPEM  []byte // token-rs256-pubkey-base64, decoded: verifies only
	Issuer          string
	Audiences       []string
	Leeway          time.Duration
}
