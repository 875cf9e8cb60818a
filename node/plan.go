package node

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/garret-cache/garret/api"
	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/diskspace"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/garret-cache/garret/replication/repair"
	"github.com/garret-cache/garret/replication/syncer"
)

// plan is every component config New builds from the server config, built
// and checked once before anything is created, so that CheckConfig
// (garretd --mode check-config) fails exactly where and how New would.
type plan struct {
	store   chunkstore.Config
	host    p2p.Config     // PrivateKey is the identity's, set by New
	catalog catalog.Config // NodeID is the identity's, set by New
	tokens  *token.Authority
	api     api.Config
	floor   diskspace.Floor  // pushes are refused below it
	cluster cluster.Config   // Log and the default APIURL are set by New
	syncer  syncer.Config    // Log is set by New
	sync    bool             // run the syncer: a cluster node without sync = false
	ack     syncer.AckConfig // Copies 0: no wait (a lone node); Log is set by New
	scrub   repair.Config    // Node, Log and Metrics are set by New
}

// DefaultMinCopies is [cluster] min-copies-before-ack when not set: a push
// is acknowledged once two nodes hold it (never more than are live).
const DefaultMinCopies = 2

// ErrNoClusterSecret refuses a node that would talk to other nodes without
// the cluster secret.
var ErrNoClusterSecret = errors.New("node: a cluster node needs [cluster] secret (or GARRET_CLUSTER_SECRET), the same on every node and at least 32 bytes; make one with: garretd gen-secret")

// CheckConfig runs every check New runs on a server config without creating,
// opening or binding anything; an error is New's error, word for word.
func CheckConfig(sc *serverconfig.Config) error {
	_, err := newPlan(Config{Server: sc})
	return err
}

func newPlan(cfg Config) (*plan, error) {
	sc := cfg.Server
	p := &plan{}

	// Local chunk store.
	p.store = chunkstore.DefaultConfig()
	p.store.Dir = filepath.Join(sc.DataDir, "chunks")
	ch := sc.Chunking
	p.store.NarSizeThreshold, p.store.MinSize, p.store.AvgSize, p.store.MaxSize = ch.NarSizeThreshold, ch.MinSize, ch.AvgSize, ch.MaxSize
	p.store.Level = sc.ZstdLevel()
	if err := p.store.Validate(); err != nil {
		return nil, fmt.Errorf("node: [chunking] nar-size-threshold = %d, min-size = %d, avg-size = %d, max-size = %d: %w",
			ch.NarSizeThreshold, ch.MinSize, ch.AvgSize, ch.MaxSize, err)
	}

	// libp2p host: carries Raft (and, in a cluster, chunk exchange).
	p.host.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	if a := sc.Cluster.P2PListen; a != "" {
		if _, err := p2p.ToMultiaddr(a); err != nil {
			return nil, fmt.Errorf("node: [cluster] p2p-listen: %w", err)
		}
		p.host.ListenAddrs = []string{a}
	}
	if a := sc.Cluster.P2PAdvertise; a != "" {
		if _, err := p2p.ToMultiaddr(a); err != nil {
			return nil, fmt.Errorf("node: [cluster] p2p-advertise: %w", err)
		}
		p.host.AdvertiseAddrs = []string{a}
	}

	// Raft catalog; a lone node bootstraps itself the first time only.
	catDir := filepath.Join(sc.DataDir, "catalog")
	p.catalog = catalog.DefaultConfig()
	if cfg.FastTimings {
		p.catalog = catalog.TestConfig(catDir)
	}
	// Bootstrap only without join (unless set explicitly), and only when there
	// is no Raft state: a joining node waits to be added by the leader.
	p.catalog.Dir, p.catalog.Bootstrap = catDir, len(sc.Cluster.Join) == 0
	if sc.Cluster.Bootstrap != nil {
		p.catalog.Bootstrap = *sc.Cluster.Bootstrap
	}

	// Tokens and the HTTP API.
	var err error
	if p.tokens, err = TokenAuthority(sc); err != nil {
		return nil, fmt.Errorf("node: tokens: %w", err)
	}
	if _, _, err := net.SplitHostPort(sc.Listen); err != nil {
		return nil, fmt.Errorf("node: listen %q: want host:port", sc.Listen)
	}
	p.api = api.DefaultConfig()
	p.api.APIEndpoint, p.api.SubstituterEndpoint, p.api.AllowedHosts = sc.APIEndpoint, sc.SubstituterEndpoint, sc.AllowedHosts
	p.api.MaxNarInfoSize, p.api.SoftDeleteCaches = int64(sc.MaxNarInfoSize), sc.SoftDeleteCaches
	p.api.DecoderMemory = sc.Uploads.DecoderMemory
	p.api.PriorityOffset = int32(sc.Cluster.PriorityOffset)
	p.floor = diskspace.Floor{Dir: sc.DataDir, Min: uint64(sc.Uploads.MinFreeSpace)}

	// The cluster controller; gossip, when configured. The API URL it tells
	// the others (garret use lists it) is api-url, else Attic's
	// api-endpoint, else (set by New) the listen address.
	cc := sc.Cluster
	p.cluster = cluster.Config{NodeName: cc.NodeName, Region: cc.Region, APIURL: orDefault(cc.APIURL, sc.APIEndpoint), Voter: cc.Voter == nil || *cc.Voter,
		Voters: cc.Voters, Join: cc.Join, DataDir: sc.DataDir, LAN: cfg.FastTimings, DeadVoterTimeout: cfg.DeadVoterTimeout}
	if cfg.FastTimings {
		p.cluster.RejoinEvery = time.Second
	}
	if p.cluster.Gossip, err = splitGossip(cc); err != nil {
		return nil, err
	}
	p.syncer = syncer.Config{CopiesPerRegion: cc.CopiesPerRegion}
	p.sync = p.cluster.Gossip != nil && !cc.NoSync
	if p.cluster.Gossip != nil { // a lone node acknowledges what it holds
		p.ack = syncer.AckConfig{Copies: cmp.Or(cc.MinCopiesBeforeAck, DefaultMinCopies), CopiesPerRegion: cc.CopiesPerRegion}
	}
	p.scrub = repair.Config{Interval: cc.ScrubInterval, Rate: cc.ScrubRate, StateFile: filepath.Join(sc.DataDir, ScrubStateFile)}

	// The channel's keys. Only holders of the secret can connect (libp2p
	// pnet) and gossip (memberlist AES-GCM). A cluster member needs the
	// cluster's; a lone node uses its own, made by New in the data dir.
	if sc.Cluster.Secret == "" && (p.cluster.Gossip != nil || !p.catalog.Bootstrap) {
		return nil, ErrNoClusterSecret
	}
	if sc.Cluster.Secret != "" {
		if p.host.PSK, err = p2p.DeriveKey(sc.Cluster.Secret, p2p.LabelPNet); err != nil {
			return nil, fmt.Errorf("node: [cluster] secret: %w", err)
		}
		if p.cluster.Gossip != nil {
			if p.cluster.Gossip.Key, err = p2p.DeriveKey(sc.Cluster.Secret, p2p.LabelMemberlist); err != nil {
				return nil, fmt.Errorf("node: [cluster] secret: %w", err)
			}
		}
	}
	return p, nil
}

// TokenAuthority parses the configured token signing key (serverconfig
// keeps its PEM as read) into the authority that signs and verifies tokens.
func TokenAuthority(sc *serverconfig.Config) (*token.Authority, error) {
	t := sc.Token
	tc := token.Config{HS256Secret: t.HS256Secret, Issuer: t.Issuer, Audiences: t.Audiences, Leeway: t.Leeway}
	var err error
	switch {
	case t.RS256PrivatePEM != nil:
		if tc.RS256PrivateKey, err = token.ParseRS256PrivateKeyPEM(t.RS256PrivatePEM); err != nil {
			return nil, fmt.Errorf("token-rs256-secret-base64: %w", err)
		}
	case t.RS256PublicPEM != nil:
		if tc.RS256PublicKey, err = token.ParseRS256PublicKeyPEM(t.RS256PublicPEM); err != nil {
			return nil, fmt.Errorf("token-rs256-pubkey-base64: %w", err)
		}
	}
	return token.NewAuthority(tc)
}

// DiskSpace describes the free space on the filesystem of sc's data dir
// (or of its nearest existing parent, before the first start) against
// [uploads] min-free-space, for garretd --mode check-config.
func DiskSpace(sc *serverconfig.Config) string {
	dir := sc.DataDir
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	u, err := diskspace.Stat(dir)
	if err != nil {
		return fmt.Sprintf("data dir %s: free space unknown: %v", sc.DataDir, err)
	}
	floor := uint64(sc.Uploads.MinFreeSpace)
	have := fmt.Sprintf("data dir %s: %s free of %s", sc.DataDir, diskspace.Bytes(u.Free), diskspace.Bytes(u.Total))
	switch {
	case floor == 0:
		return have + "; [uploads] min-free-space = 0: pushes are never refused for lack of space"
	case u.Free < floor:
		return have + fmt.Sprintf(", BELOW [uploads] min-free-space = %s: pushes would be refused (507) until space is freed", diskspace.Bytes(floor))
	}
	return have + fmt.Sprintf("; pushes are refused (507) below [uploads] min-free-space = %s", diskspace.Bytes(floor))
}

// splitGossip splits the gossip addresses; nil without gossip-listen or join
// (a lone node without gossip).
func splitGossip(cc serverconfig.Cluster) (*cluster.GossipConfig, error) {
	if cc.GossipListen == "" && len(cc.Join) == 0 {
		return nil, nil
	}
	g := &cluster.GossipConfig{}
	listen := orDefault(cc.GossipListen, "127.0.0.1:0")
	host, port, err := splitPort(listen)
	if err != nil {
		return nil, fmt.Errorf("node: [cluster] gossip-listen %q: %w", listen, err)
	}
	g.BindHost, g.BindPort = host, port
	if cc.GossipAdvertise != "" {
		if g.AdvertiseHost, g.AdvertisePort, err = splitPort(cc.GossipAdvertise); err != nil {
			return nil, fmt.Errorf("node: [cluster] gossip-advertise %q: %w", cc.GossipAdvertise, err)
		}
	}
	return g, nil
}

func splitPort(hostPort string) (string, int, error) {
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port")
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", portText)
	}
	return host, port, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
