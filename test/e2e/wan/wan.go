package wan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MTU of every emulated interface. Larger than Ethernet's so that TCP moves
// fewer, bigger packets through the user-space forwarder.
const MTU = 9000

// Net is one emulated network: hosts in regions, joined by a forwarder that
// applies per-region-pair latency and bandwidth, and cuts.
type Net struct {
	prefix string // netns names start with it
	subnet byte   // 10.<subnet>.x.y

	mu        sync.Mutex
	hosts     map[string]*Host // by name
	byIP      map[[4]byte]*Host
	regions   map[string]byte
	latency   map[pair]time.Duration // one way
	bandwidth map[pair]float64       // bytes per second, 0 = unlimited
	cut       map[pair]bool          // region pairs or host pairs ("h:" prefix)
	links     map[[2]*Host]*link
	stats     Stats
	pairBytes map[pair]uint64 // IP bytes forwarded between two regions, both ways
	closed    bool
	wg        sync.WaitGroup
}

// Stats counts what the forwarder did.
type Stats struct {
	Forwarded, Dropped, NotIPv4 uint64
}

type pair struct{ a, b string }

func key(a, b string) pair {
	if a > b {
		a, b = b, a
	}
	return pair{a, b}
}

// Host is one emulated machine: its own network namespace with an interface
// on the emulated network and its own loopback.
type Host struct {
	Name, Region string
	IP           net.IP
	NS           string // network namespace name (ip netns)
	net          *Net
	tun          *os.File
}

// Available reports why the emulator cannot run here ("" if it can): it needs
// root, iproute2 and /dev/net/tun.
func Available() string {
	if os.Geteuid() != 0 {
		return "the WAN emulator needs root (network namespaces and /dev/net/tun)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the WAN emulator needs iproute2's ip command"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "the WAN emulator needs /dev/net/tun"
	}
	return ""
}

// instances numbers the Nets of this process (tests may run in parallel).
var instances atomic.Int32

// New prepares an empty network. Namespaces left behind by earlier runs
// whose process has died are removed first.
func New() (*Net, error) {
	if why := Available(); why != "" {
		return nil, errors.New(why)
	}
	removeStale()
	pid, k := os.Getpid(), int(instances.Add(1))
	return &Net{
		prefix:    fmt.Sprintf("garret-e2e-%d-%d-", pid, k),
		subnet:    byte(100 + (pid+k)%100),
		hosts:     map[string]*Host{},
		byIP:      map[[4]byte]*Host{},
		regions:   map[string]byte{},
		latency:   map[pair]time.Duration{},
		bandwidth: map[pair]float64{},
		pairBytes: map[pair]uint64{},
		cut:       map[pair]bool{},
		links:     map[[2]*Host]*link{},
	}, nil
}

// removeStale deletes garret-e2e-<pid>-* namespaces of dead processes.
func removeStale() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "garret-e2e-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == nil {
			continue // still running
		}
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// AddHost creates a host in region. Hosts get 10.<n>.<region>.<i>/16.
func (n *Net) AddHost(name, region string) (*Host, error) {
	n.mu.Lock()
	if _, dup := n.hosts[name]; dup {
		n.mu.Unlock()
		return nil, fmt.Errorf("wan: host %q exists", name)
	}
	r, ok := n.regions[region]
	if !ok {
		r = byte(len(n.regions) + 1)
		n.regions[region] = r
	}
	i := byte(1)
	for _, h := range n.hosts {
		if h.Region == region {
			i++
		}
	}
	ip := net.IPv4(10, n.subnet, r, i).To4()
	h := &Host{Name: name, Region: region, IP: ip, NS: n.prefix + name, net: n}
	n.mu.Unlock()

	if err := ipCmd("netns", "add", h.NS); err != nil {
		return nil, err
	}
	tun, err := openTUN(h.NS, "wan0")
	if err != nil {
		_ = ipCmd("netns", "del", h.NS)
		return nil, err
	}
	h.tun = tun
	for _, args := range [][]string{
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", h.NS, "link", "set", "wan0", "mtu", strconv.Itoa(MTU), "up"},
		{"-n", h.NS, "addr", "add", ip.String() + "/16", "dev", "wan0"},
	} {
		if err := ipCmd(args...); err != nil {
			_ = tun.Close()
			_ = ipCmd("netns", "del", h.NS)
			return nil, err
		}
	}
	n.mu.Lock()
	n.hosts[name] = h
	n.byIP[[4]byte(ip)] = h
	n.mu.Unlock()
	n.wg.Add(1)
	go n.read(h)
	return h, nil
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("wan: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs f on an OS thread that has entered the namespace ns, then
// returns the thread to the process's namespace. A thread that cannot return
// is left locked, so the Go runtime retires it with its goroutine.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("wan: setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("wan: returning from %s: %w", ns, err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// openTUN creates a TUN interface (no packet info header) inside ns. The fd
// is non-blocking so Go's poller serves reads and writes.
func openTUN(ns, name string) (*os.File, error) {
	var fd int
	err := inNetns(ns, func() error {
		var err error
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("wan: open /dev/net/tun: %w", err)
		}
		var req [unix.IFNAMSIZ + 64]byte
		copy(req[:], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			_ = unix.Close(fd)
			return fmt.Errorf("wan: TUNSETIFF: %w", errno)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+ns), nil
}

// Host returns the host called name, or nil.
func (n *Net) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[name]
}

// SetLatency sets the one-way delay between two regions (a region with
// itself is the delay inside it). The round trip is twice this.
func (n *Net) SetLatency(regionA, regionB string, oneWay time.Duration) {
	n.mu.Lock()
	n.latency[key(regionA, regionB)] = oneWay
	n.mu.Unlock()
}

// SetBandwidth caps each direction of every link between two regions, in
// bytes per second (0 removes the cap).
func (n *Net) SetBandwidth(regionA, regionB string, bytesPerSecond float64) {
	n.mu.Lock()
	n.bandwidth[key(regionA, regionB)] = bytesPerSecond
	n.mu.Unlock()
}

// CutRegions drops every packet between two regions until HealRegions.
func (n *Net) CutRegions(a, b string) { n.setCut(key(a, b), true) }

// HealRegions undoes CutRegions.
func (n *Net) HealRegions(a, b string) { n.setCut(key(a, b), false) }

// Isolate cuts region from every other region.
func (n *Net) Isolate(region string) { n.isolate(region, true) }

// Rejoin heals every cut between region and the others.
func (n *Net) Rejoin(region string) { n.isolate(region, false) }

func (n *Net) isolate(region string, cut bool) {
	n.mu.Lock()
	var others []string
	for r := range n.regions {
		if r != region {
			others = append(others, r)
		}
	}
	n.mu.Unlock()
	for _, r := range others {
		n.setCut(key(region, r), cut)
	}
}

// CutHosts drops every packet between two hosts until HealHosts.
func (n *Net) CutHosts(a, b string) { n.setCut(key("h:"+a, "h:"+b), true) }

// HealHosts undoes CutHosts.
func (n *Net) HealHosts(a, b string) { n.setCut(key("h:"+a, "h:"+b), false) }

func (n *Net) setCut(p pair, cut bool) {
	n.mu.Lock()
	if cut {
		n.cut[p] = true
	} else {
		delete(n.cut, p)
	}
	n.mu.Unlock()
}

// Bytes is how many IP bytes the forwarder carried between two regions
// (both directions; a region with itself: inside it).
func (n *Net) Bytes(regionA, regionB string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pairBytes[key(regionA, regionB)]
}

// Stats returns the forwarder's counters.
func (n *Net) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops the forwarder and removes every host's namespace. Processes
// still running in a namespace keep it alive until they exit; kill them
// first.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	hosts := make([]*Host, 0, len(n.hosts))
	for _, h := range n.hosts {
		hosts = append(hosts, h)
	}
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.Unlock()
	for _, l := range links {
		close(l.queue)
	}
	var errs []error
	for _, h := range hosts {
		_ = h.tun.Close()
	}
	n.wg.Wait()
	for _, h := range hosts {
		errs = append(errs, ipCmd("netns", "del", h.NS))
	}
	return errors.Join(errs...)
}

// Command is name args… run inside the host's namespace (ip netns exec
// execs it, so the process's PID is the command's own).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// DialContext opens a connection from inside the host's namespace, as a
// program running on that host would (127.0.0.1 is the host's own loopback).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	var d net.Dialer
	// The socket is created, and so belongs, in the host's namespace; the
	// connect happens there too. Only then does the thread go back.
	err := inNetns(h.NS, func() error {
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// HTTPClient is an HTTP client that runs on the host.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: h.DialContext, MaxIdleConnsPerHost: 16}, Timeout: 2 * time.Minute}
}
