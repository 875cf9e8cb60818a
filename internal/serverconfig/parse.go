package serverconfig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/garret-cache/garret/internal/humantime"
)

// file mirrors server.toml.
type file struct {
	Listen                   *string  `toml:"listen"`
	APIEndpoint              string   `toml:"api-endpoint"`
	SubstituterEndpoint      string   `toml:"substituter-endpoint"`
	AllowedHosts             []string `toml:"allowed-hosts"`
	SoftDeleteCaches         bool     `toml:"soft-delete-caches"`
	RequireProofOfPossession *bool    `toml:"require-proof-of-possession"`
	MaxNarInfoSize           *int     `toml:"max-nar-info-size"`
	DataDir                  string   `toml:"data-dir"`
	LegacyHS256              string   `toml:"token-hs256-secret-base64"`
	JWT                      struct {
		Issuer    string   `toml:"token-bound-issuer"`
		Audiences []string `toml:"token-bound-audiences"`
		Leeway    string   `toml:"leeway"`
		Signing   struct {
			HS256    string `toml:"token-hs256-secret-base64"`
			RS256    string `toml:"token-rs256-secret-base64"`
			RS256Pub string `toml:"token-rs256-pubkey-base64"`
		} `toml:"signing"`
	} `toml:"jwt"`
	Chunking struct {
		NarSizeThreshold *int `toml:"nar-size-threshold"`
		MinSize          *int `toml:"min-size"`
		AvgSize          *int `toml:"avg-size"`
		MaxSize          *int `toml:"max-size"`
	} `toml:"chunking"`
	Compression struct {
		Type  string `toml:"type"`
		Level *int   `toml:"level"`
	} `toml:"compression"`
	GC struct {
		Interval         string `toml:"interval"`
		DefaultRetention string `toml:"default-retention-period"`
	} `toml:"garbage-collection"`
	Cluster struct {
		NodeName        string   `toml:"node-name"`
		Region          string   `toml:"region"`
		Secret          string   `toml:"secret"`
		GossipListen    string   `toml:"gossip-listen"`
		GossipAdvertise string   `toml:"gossip-advertise"`
		P2PListen       string   `toml:"p2p-listen"`
		P2PAdvertise    string   `toml:"p2p-advertise"`
		APIURL          string   `toml:"api-url"`
		Join            []string `toml:"join"`
		Bootstrap       *bool    `toml:"bootstrap"`
		Voter           *bool    `toml:"voter"`
		Voters          *int     `toml:"voters"`
		CopiesPerRegion *int     `toml:"copies-per-region"`
		Sync            *bool    `toml:"sync"`
		MinCopies       *int     `toml:"min-copies-before-ack"`
		PriorityOffset  *int     `toml:"priority-offset"`
		ScrubInterval   string   `toml:"scrub-interval"`
		ScrubRate       any      `toml:"scrub-rate"`
	} `toml:"cluster"`
	Uploads struct {
		DecoderMemory any `toml:"decoder-memory"`
		MinFreeSpace  any `toml:"min-free-space"`
	} `toml:"uploads"`
	Database map[string]any `toml:"database"`
	Storage  map[string]any `toml:"storage"`
}

func parse(text string, getenv func(string) string) (*Config, error) {
	var f file
	md, err := toml.Decode(text, &f)
	if err != nil {
		return nil, err
	}
	c := &Config{
		Listen: "[::]:8080", APIEndpoint: f.APIEndpoint, SubstituterEndpoint: f.SubstituterEndpoint,
		AllowedHosts: f.AllowedHosts, SoftDeleteCaches: f.SoftDeleteCaches, RequireProofOfPossession: true,
		MaxNarInfoSize: 1 << 20, DataDir: f.DataDir,
		Chunking:    Chunking{NarSizeThreshold: 65536, MinSize: 16384, AvgSize: 65536, MaxSize: 262144},
		Compression: Compression{Type: "zstd", Level: f.Compression.Level},
		GC:          GC{Interval: 12 * time.Hour},
		Uploads:     Uploads{DecoderMemory: DefaultDecoderMemory, MinFreeSpace: DefaultMinFreeSpace},
	}
	for _, k := range md.Undecoded() {
		top := k[0]
		switch {
		case top == "database" || top == "storage":
		case len(k) == 1:
			return nil, fmt.Errorf("unknown key %q", k.String())
		default:
			c.Warnings = append(c.Warnings, fmt.Sprintf("unknown key %q is ignored", k.String()))
		}
	}
	if md.IsDefined("database") {
		c.Warnings = append(c.Warnings, "[database] is ignored: Garret keeps its catalog in Raft under data-dir")
	}
	if md.IsDefined("storage") {
		c.Warnings = append(c.Warnings, "[storage] is ignored: Garret keeps chunks in pebble under data-dir")
	}
	if f.Listen != nil {
		c.Listen = *f.Listen
	}
	if f.RequireProofOfPossession != nil {
		c.RequireProofOfPossession = *f.RequireProofOfPossession
	}
	if f.MaxNarInfoSize != nil {
		c.MaxNarInfoSize = *f.MaxNarInfoSize
	}
	c.APIEndpoint = c.withSlash("api-endpoint", c.APIEndpoint)
	c.SubstituterEndpoint = c.withSlash("substituter-endpoint", c.SubstituterEndpoint)
	if c.DataDir == "" {
		c.DataDir = filepath.Join(xdg(getenv, "XDG_DATA_HOME", filepath.Join(".local", "share")), "garret")
	}
	if err := c.setChunking(&f); err != nil {
		return nil, err
	}
	if err := c.setCompression(&f); err != nil {
		return nil, err
	}
	if err := c.setGC(&f); err != nil {
		return nil, err
	}
	if err := c.setToken(&f, getenv); err != nil {
		return nil, err
	}
	if err := c.setUploads(&f); err != nil {
		return nil, err
	}
	return c, c.setCluster(&f, getenv)
}

// withSlash appends the slash an endpoint must end with. Attic accepts the
// endpoint as written and appends the cache name to it, so a missing slash
// gives clients URLs such as https://cache.example.comhello; Garret fixes it
// and says so.
func (c *Config) withSlash(key, v string) string {
	if v == "" || strings.HasSuffix(v, "/") {
		return v
	}
	c.Warnings = append(c.Warnings, fmt.Sprintf("%s %q does not end with a slash: using %q (Attic would append cache names to it as written)", key, v, v+"/"))
	return v + "/"
}

func (c *Config) setChunking(f *file) error {
	for _, p := range []struct {
		v   *int
		dst *int
	}{{f.Chunking.NarSizeThreshold, &c.Chunking.NarSizeThreshold}, {f.Chunking.MinSize, &c.Chunking.MinSize}, {f.Chunking.AvgSize, &c.Chunking.AvgSize}, {f.Chunking.MaxSize, &c.Chunking.MaxSize}} {
		if p.v != nil {
			*p.dst = *p.v
		}
	}
	ch := c.Chunking
	if ch.MinSize < 64 || ch.MinSize > ch.AvgSize || ch.AvgSize > ch.MaxSize || ch.NarSizeThreshold < 0 {
		return fmt.Errorf("[chunking] needs 64 <= min-size <= avg-size <= max-size and nar-size-threshold >= 0, got %+v", ch)
	}
	if ch.NarSizeThreshold == 0 {
		// Attic stores each new NAR as one object then. A NAR in one chunk
		// cannot be done here (a chunk is at most 64 MiB and is buffered in
		// memory), and the reason to want it does not exist.
		c.Warnings = append(c.Warnings, "[chunking] nar-size-threshold = 0 (Attic: store new NARs unchunked) acts as 1 in Garret: "+
			"every NAR is cut into content-defined chunks of min-size to max-size bytes, stored in Garret's own segment files, "+
			"so Attic's reason for turning chunking off (many small objects in S3 and rows in the database) does not apply, and every NAR is still deduplicated")
	}
	return nil
}

func (c *Config) setCompression(f *file) error {
	switch t := f.Compression.Type; t {
	case "", "zstd":
	case "none":
		c.Compression.Type = "none"
	case "brotli", "xz":
		c.Compression.Type = t
		c.Warnings = append(c.Warnings, fmt.Sprintf("[compression] type %q: Garret always stores zstd frames (served without recompression); the level mapping still applies", t))
	default:
		return fmt.Errorf("[compression] type %q is not one of zstd, none, xz, brotli", t)
	}
	return nil
}

func (c *Config) setGC(f *file) error {
	var err error
	if f.GC.Interval != "" {
		if c.GC.Interval, err = humantime.Parse(f.GC.Interval); err != nil {
			return fmt.Errorf("[garbage-collection] interval: %w", err)
		}
	}
	if f.GC.DefaultRetention != "" {
		if c.GC.DefaultRetentionPeriod, err = humantime.Parse(f.GC.DefaultRetention); err != nil {
			return fmt.Errorf("[garbage-collection] default-retention-period: %w", err)
		}
	}
	return nil
}

func (c *Config) setUploads(f *file) error {
	var err error
	if v := f.Uploads.DecoderMemory; v != nil {
		if c.Uploads.DecoderMemory, err = parseSize(v); err != nil {
			return fmt.Errorf("[uploads] decoder-memory: %w", err)
		}
		if c.Uploads.DecoderMemory < MinDecoderMemory {
			return fmt.Errorf("[uploads] decoder-memory = %d: must be at least %d (8 MiB: one xz stream at Nix's default level)", c.Uploads.DecoderMemory, MinDecoderMemory)
		}
	}
	if v := f.Uploads.MinFreeSpace; v != nil {
		if c.Uploads.MinFreeSpace, err = parseSize(v); err != nil {
			return fmt.Errorf("[uploads] min-free-space: %w", err)
		}
	}
	return nil
}

// parseSize reads a size in bytes: a TOML integer, or a string of a number
// and a unit, "256 MiB", "1GiB", "512M" (K, M, G, T and KiB … TiB are
// powers of 1024; KB, MB, GB, TB powers of 1000; B or nothing is bytes).
func parseSize(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("%d is negative", v)
		}
		return v, nil
	case string:
		s := strings.TrimSpace(v)
		i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i < 0 {
			i = len(s)
		}
		num, unit := s[:i], strings.TrimSpace(s[i:])
		mult, ok := sizeUnits[strings.ToLower(unit)]
		if num == "" || !ok {
			return 0, fmt.Errorf("%q is not a size (want bytes, or a number and a unit such as \"256 MiB\" or \"1 GiB\")", v)
		}
		n, err := strconv.ParseFloat(num, 64)
		if err != nil || n*float64(mult) >= 1<<63 {
			return 0, fmt.Errorf("%q is not a size", v)
		}
		return int64(n * float64(mult)), nil
	}
	return 0, fmt.Errorf("%v is not a size (want an integer number of bytes or a string such as \"256 MiB\")", v)
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

func (c *Config) setCluster(f *file, getenv func(string) string) error {
	fc := f.Cluster
	c.Cluster = Cluster{NodeName: fc.NodeName, Region: fc.Region, Secret: fc.Secret, GossipListen: fc.GossipListen,
		GossipAdvertise: fc.GossipAdvertise, P2PListen: fc.P2PListen, P2PAdvertise: fc.P2PAdvertise, APIURL: fc.APIURL,
		Join: fc.Join, Bootstrap: fc.Bootstrap, Voter: fc.Voter}
	if fc.APIURL != "" {
		if err := checkAPIURL(fc.APIURL); err != nil {
			return err
		}
	}
	c.flyDefaults(getenv)
	if v := getenv("GARRET_CLUSTER_SECRET"); v != "" {
		c.Cluster.Secret = v
	}
	if s := c.Cluster.Secret; s != "" && len(s) < 32 {
		return fmt.Errorf("[cluster] secret must be at least 32 bytes (garretd gen-secret prints one)")
	}
	c.Cluster.Voters = 3
	if fc.Voters != nil {
		if v := *fc.Voters; v != 3 && v != 5 {
			return fmt.Errorf("[cluster] voters = %d: must be 3 or 5 (an odd number that tolerates one or two failed voters)", v)
		}
		c.Cluster.Voters = *fc.Voters
	}
	if fc.CopiesPerRegion != nil {
		if v := *fc.CopiesPerRegion; v < 1 || v > 64 {
			return fmt.Errorf("[cluster] copies-per-region = %d: must be from 1 to 64 (leave it out for a copy on every node)", v)
		}
		c.Cluster.CopiesPerRegion = *fc.CopiesPerRegion
	}
	c.Cluster.NoSync = fc.Sync != nil && !*fc.Sync
	if fc.MinCopies != nil {
		if v := *fc.MinCopies; v < 1 || v > 64 {
			return fmt.Errorf("[cluster] min-copies-before-ack = %d: must be from 1 to 64 (1: acknowledge once this node holds a push)", v)
		}
		c.Cluster.MinCopiesBeforeAck = *fc.MinCopies
	}
	if fc.PriorityOffset != nil {
		if v := *fc.PriorityOffset; v < 0 || v > MaxPriorityOffset {
			return fmt.Errorf("[cluster] priority-offset = %d: must be from 0 to %d (added to each cache's priority in this node's nix-cache-info)", v, MaxPriorityOffset)
		}
		c.Cluster.PriorityOffset = *fc.PriorityOffset
	}
	return c.setScrub(f)
}

// setScrub reads [cluster] scrub-interval (a duration; "0" disables the
// periodic scrub) and scrub-rate (a size per second, "32 MiB" or
// "32 MiB/s").
func (c *Config) setScrub(f *file) error {
	fc := f.Cluster
	c.Cluster.ScrubInterval, c.Cluster.ScrubRate = DefaultScrubInterval, DefaultScrubRate
	if v := strings.TrimSpace(fc.ScrubInterval); v != "" {
		d, err := humantime.Parse(v)
		if err != nil {
			return fmt.Errorf("[cluster] scrub-interval: %w (want a duration such as \"7 days\", or \"0\" to scrub only on demand)", err)
		}
		if d != 0 && d < MinScrubInterval {
			return fmt.Errorf("[cluster] scrub-interval = %q: at least 1 hour (a scrub reads every stored chunk), or \"0\" to scrub only on demand", v)
		}
		c.Cluster.ScrubInterval = d
	}
	if v := fc.ScrubRate; v != nil {
		if s, ok := v.(string); ok {
			v = strings.TrimSuffix(strings.TrimSpace(s), "/s")
		}
		r, err := parseSize(v)
		if err != nil {
			return fmt.Errorf("[cluster] scrub-rate: %w", err)
		}
		if r < MinScrubRate {
			return fmt.Errorf("[cluster] scrub-rate = %d bytes/s: at least 1 MiB/s (at less a scrub of a large store would outlast its interval)", r)
		}
		c.Cluster.ScrubRate = r
	}
	return nil
}

// setToken resolves the signing key: [jwt.signing], the legacy top-level
// key, then GARRET_ and ATTIC_SERVER_TOKEN_* variables in Attic's order.
func (c *Config) setToken(f *file, getenv func(string) string) error {
	c.Token.Issuer, c.Token.Audiences, c.Token.Leeway = f.JWT.Issuer, f.JWT.Audiences, 30*time.Second
	if f.JWT.Leeway != "" {
		d, err := humantime.Parse(f.JWT.Leeway)
		if err != nil {
			return fmt.Errorf("[jwt] leeway: %w", err)
		}
		c.Token.Leeway = d
	}
	s := f.JWT.Signing
	set := 0
	for _, v := range []string{s.HS256, s.RS256, s.RS256Pub} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return errors.New("[jwt.signing] must set exactly one of token-hs256-secret-base64, token-rs256-secret-base64, token-rs256-pubkey-base64")
	}
	hs, rs, rsPub := s.HS256, s.RS256, s.RS256Pub
	if set == 0 && f.LegacyHS256 != "" {
		hs = f.LegacyHS256
	}
	if hs == "" && rs == "" && rsPub == "" {
		for _, prefix := range []string{"GARRET_SERVER_TOKEN_", "ATTIC_SERVER_TOKEN_"} {
			if rsPub, rs, hs = getenv(prefix+"RS256_PUBKEY_BASE64"), getenv(prefix+"RS256_SECRET_BASE64"), getenv(prefix+"HS256_SECRET_BASE64"); rsPub+rs+hs != "" {
				break
			}
		}
	}
	switch {
	case rsPub != "":
		pemBytes, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rsPub))
		if err != nil {
			return fmt.Errorf("token-rs256-pubkey-base64 is not base64: %w", err)
		}
		c.Token.RS256PublicPEM = pemBytes
		return nil
	case rs != "":
		pemBytes, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rs))
		if err != nil {
			return fmt.Errorf("token-rs256-secret-base64 is not base64: %w", err)
		}
		c.Token.RS256PrivatePEM = pemBytes
		return nil
	case hs != "":
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(hs))
		if err != nil {
			return fmt.Errorf("token-hs256-secret-base64 is not base64: %w", err)
		}
		if len(key) == 0 {
			return errors.New("token-hs256-secret-base64 is empty")
		}
		c.Token.HS256Secret = key
		return nil
	}
	return errors.New("no token signing key: set [jwt.signing] token-hs256-secret-base64 (e.g. `openssl rand 64 | base64 -w0`), or ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64 / ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64")
}
