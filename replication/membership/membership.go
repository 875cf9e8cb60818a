package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/garret-cache/garret/internal/logbridge"
)

// Meta is what every node gossips about itself.
type Meta struct {
	PeerID   string   `json:"id"`
	Region   string   `json:"r,omitempty"`
	APIURL   string   `json:"api,omitempty"`
	P2PAddrs []string `json:"p2p,omitempty"`
	Voter    bool     `json:"v"`
	// ClusterID is the catalog's cluster identity when the node started
	// ("" for a fresh data dir): nodes of another cluster are refused.
	ClusterID string `json:"c,omitempty"`
	// Version is the newest catalog command set the node applies
	// (catalog.CommandVersion); 0 from nodes that predate it, which know
	// version 1.
	Version int `json:"cv,omitempty"`
}

// Member is one node as this node sees it.
type Member struct {
	Name   string
	Gossip string // host:port
	Meta   Meta
	RTT    time.Duration // 0 until measured
}

// ErrNoKey refuses gossip without a 32-byte key.
var ErrNoKey = errors.New("membership: the gossip key must be 32 bytes")

// Config configures gossip.
type Config struct {
	NodeName      string
	BindAddr      string // default 127.0.0.1
	BindPort      int    // 0 = any free port
	AdvertiseAddr string
	AdvertisePort int
	SecretKey     []byte // 32 bytes (AES-256-GCM), required: gossip is always encrypted
	Meta          Meta
	WAN           bool   // memberlist's WAN timings (production) instead of LAN ones
	OnChange      func() // called after joins, leaves and updates
	Log           *slog.Logger
}

// Membership is this node's view of the cluster.
type Membership struct {
	ml       *memberlist.Memberlist
	meta     []byte
	onChange func()
	mu       sync.Mutex
	rtts     map[string]time.Duration
	// live are the members memberlist shows alive, copied in its event
	// callbacks: the *Node values memberlist.Members returns are updated
	// under its lock after it returns them, so reading them races.
	live     map[string]Member
	departed []Departed      // newest first, at most maxDeparted
	leavers  map[string]bool // announced a leave that gossip has not shown yet
	region   string          // this node's, first among the metrics' region labels
	leave    sync.Once
	leaveErr error
	ready    atomic.Bool // events before Create returns are not reported
	stopping atomic.Bool // Leave or Stop began
}

// New starts gossip (not yet joined to anyone).
func New(cfg Config) (*Membership, error) {
	mc := memberlist.DefaultLANConfig()
	if cfg.WAN {
		mc = memberlist.DefaultWANConfig()
		// 30 s by default; a push/pull or join to an unreachable member need
		// not wait that long at WAN round trips of a few hundred ms.
		mc.TCPTimeout = 10 * time.Second
	}
	mc.Name = cfg.NodeName
	mc.BindAddr, mc.BindPort = cfg.BindAddr, cfg.BindPort
	if mc.BindAddr == "" {
		mc.BindAddr = "127.0.0.1"
	}
	mc.AdvertiseAddr, mc.AdvertisePort = cfg.AdvertiseAddr, cfg.AdvertisePort
	if len(cfg.SecretKey) != 32 {
		return nil, ErrNoKey
	}
	// Every message is encrypted and authenticated, and nothing unencrypted
	// is accepted (memberlist's defaults, stated).
	mc.SecretKey, mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = cfg.SecretKey, true, true
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("membership: node metadata is %d bytes, more than memberlist's %d", len(meta), memberlist.MetaMaxSize)
	}
	m := &Membership{meta: meta, onChange: cfg.OnChange, rtts: map[string]time.Duration{}, leavers: map[string]bool{}, live: map[string]Member{},
		region: cfg.Meta.Region}
	mc.Delegate, mc.Events, mc.Ping = delegate{m}, events{m}, pings{m}
	mc.Logger = log.New(io.Discard, "", 0)
	if cfg.Log != nil {
		// Once this node leaves or stops, memberlist's failures to use its
		// closed sockets are the shutdown working.
		mc.Logger = logbridge.Memberlist(logbridge.QuietOnceDone(cfg.Log, m.stopping.Load))
	}
	if m.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	m.ready.Store(true)
	return m, nil
}

// Join contacts existing members ("host:port" gossip addresses).
func (m *Membership) Join(addrs []string) (int, error) { return m.ml.Join(addrs) }

// GossipAddr is this node's advertised gossip address.
func (m *Membership) GossipAddr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members lists the live members with their metadata and RTTs.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.live))
	for _, mb := range m.live {
		mb.RTT = m.rtts[mb.Name]
		out = append(out, mb)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// setLive records n as memberlist shows it (a member whose metadata does
// not decode is left out, as it cannot be placed or dialled).
func (m *Membership) setLive(n *memberlist.Node) {
	var meta Meta
	err := json.Unmarshal(n.Meta, &meta)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.live, n.Name)
		return
	}
	m.live[n.Name] = Member{Name: n.Name, Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), Meta: meta}
}

// Departed is a member gossip saw go: declared dead after failed probes, or
// gone with a graceful leave (Left).
type Departed struct {
	Name string
	Meta Meta // as it last gossiped it
	Left bool
	At   time.Time
}

// maxDeparted bounds the departures a Membership remembers.
const maxDeparted = 32

// Departed lists the members that died or left and have not come back,
// newest first (at most 32, since this node started).
func (m *Membership) Departed() []Departed {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Departed(nil), m.departed...)
}

func (m *Membership) depart(d Departed) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d.Left = d.Left || m.leavers[d.Name]
	m.forgetLocked(d.Name)
	m.departed = append([]Departed{d}, m.departed...)
	if len(m.departed) > maxDeparted {
		m.departed = m.departed[:maxDeparted]
	}
}

func (m *Membership) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetLocked(name)
}

func (m *Membership) forgetLocked(name string) {
	delete(m.leavers, name)
	m.departed = slices.DeleteFunc(m.departed, func(d Departed) bool { return d.Name == name })
}

// Leave announces departure, then stops gossip. Later calls do nothing.
func (m *Membership) Leave(timeout time.Duration) error {
	m.leave.Do(func() {
		m.stopping.Store(true)
		m.announceLeaving(timeout)
		err := m.ml.Leave(timeout)
		m.leaveErr = errors.Join(err, m.ml.Shutdown())
	})
	return m.leaveErr
}

// leavingMsg starts the user message a node sends every member just before
// its graceful leave, followed by its name: memberlist's own leave event
// does not tell a leave from a death.
const leavingMsg = "garret-leaving\x00"

// announceLeaving tells every other member that this node is leaving, each
// at once, waiting at most timeout. A member that misses it will show a
// death instead of a leave, which changes nothing but the word it shows.
func (m *Membership) announceLeaving(timeout time.Duration) {
	self := m.ml.LocalNode().Name
	msg := []byte(leavingMsg + self)
	var wg sync.WaitGroup
	for _, n := range m.ml.Members() {
		if n.Name == self {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = m.ml.SendReliable(n, msg) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// leaving records a member's announced leave, for its departure to come
// (or, if that came first, marks it left).
func (m *Membership) leaving(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.departed {
		if m.departed[i].Name == name {
			m.departed[i].Left = true
			return
		}
	}
	if len(m.leavers) >= maxDeparted {
		clear(m.leavers)
	}
	m.leavers[name] = true
}

// Stop stops gossip without announcing departure: the others see this node
// stop answering, as after a crash, and declare it dead by probing. Later
// Leave and Stop calls do nothing.
func (m *Membership) Stop() error {
	m.leave.Do(func() {
		m.stopping.Store(true)
		m.leaveErr = m.ml.Shutdown()
	})
	return m.leaveErr
}

func (m *Membership) changed() {
	if m.onChange != nil && m.ready.Load() {
		go m.onChange()
	}
}

type delegate struct{ m *Membership }

func (d delegate) NodeMeta(int) []byte { return d.m.meta }
func (d delegate) NotifyMsg(b []byte) {
	if name, ok := strings.CutPrefix(string(b), leavingMsg); ok && name != "" && len(name) <= 256 {
		d.m.leaving(name)
	}
}
func (d delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d delegate) LocalState(bool) []byte          { return nil }
func (d delegate) MergeRemoteState([]byte, bool)   {}

type events struct{ m *Membership }

// memberlist calls these holding its node lock, so n may be read here but
// not kept.
func (e events) NotifyJoin(n *memberlist.Node) { e.m.setLive(n); e.m.forget(n.Name); e.m.changed() }
func (e events) NotifyLeave(n *memberlist.Node) {
	e.m.mu.Lock()
	delete(e.m.live, n.Name)
	e.m.mu.Unlock()
	d := Departed{Name: n.Name, At: time.Now()}
	var meta Meta
	if json.Unmarshal(n.Meta, &meta) == nil {
		d.Meta = meta
	}
	e.m.depart(d)
	e.m.changed()
}
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.setLive(n); e.m.changed() }

type pings struct{ m *Membership }

func (p pings) AckPayload() []byte { return nil }
func (p pings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, _ []byte) {
	p.m.mu.Lock()
	p.m.rtts[other.Name] = rtt
	p.m.mu.Unlock()
}
