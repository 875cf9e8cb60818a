package wan

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func newNet(t *testing.T) *Net {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the WAN emulator: %s", why)
		}
		t.Skipf("!!! SKIPPING: %s !!!", why)
	}
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// echoServer runs `nc`-like TCP and UDP echo on host h, port 9000, inside its
// namespace, using a socket created there.
func echoServer(t *testing.T, h *Host) {
	t.Helper()
	var tl net.Listener
	var ul net.PacketConn
	err := inNetns(h.NS, func() error {
		var err error
		if tl, err = net.Listen("tcp", h.IP.String()+":9000"); err != nil {
			return err
		}
		ul, err = net.ListenPacket("udp", h.IP.String()+":9000")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close(); ul.Close() })
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			m, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ul.WriteTo(buf[:m], from)
		}
	}()
}

// tcpRTT measures one request/response round trip on an open connection.
func tcpRTT(t *testing.T, r *bufio.Reader, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	return time.Since(start)
}

func udpRTT(h *Host, to string) (time.Duration, error) {
	var c net.Conn
	if err := inNetns(h.NS, func() error {
		var err error
		c, err = net.Dial("udp", to)
		return err
	}); err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("gossip")); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	if _, err := c.Read(buf); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func TestLatencyCutsAndBandwidth(t *testing.T) {
	n := newNet(t)
	eu, err := n.AddHost("eu-1", "eu")
	if err != nil {
		t.Fatal(err)
	}
	us1, err := n.AddHost("us-1", "us")
	if err != nil {
		t.Fatal(err)
	}
	us2, err := n.AddHost("us-2", "us")
	if err != nil {
		t.Fatal(err)
	}
	n.SetLatency("eu", "us", 75*time.Millisecond)
	n.SetLatency("us", "us", 500*time.Microsecond)
	echoServer(t, eu)
	echoServer(t, us2)

	// TCP EU↔US: the round trip is twice the one-way delay.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := us1.DialContext(ctx, "tcp", eu.IP.String()+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	rtt := tcpRTT(t, r, c)
	if rtt < 150*time.Millisecond || rtt > time.Second {
		t.Errorf("EU↔US TCP round trip %v, want ~150 ms", rtt)
	}
	// Inside a region.
	c2, err := us1.DialContext(ctx, "tcp", us2.IP.String()+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	if rtt := tcpRTT(t, r2, c2); rtt > 50*time.Millisecond {
		t.Errorf("US↔US round trip %v, want ~1 ms", rtt)
	}
	// UDP crosses too (memberlist gossips over it).
	if rtt, err := udpRTT(us1, eu.IP.String()+":9000"); err != nil || rtt < 150*time.Millisecond {
		t.Errorf("EU↔US UDP round trip %v %v", rtt, err)
	}

	// Cut the EU region: nothing crosses, not even on the open connection;
	// inside the US region traffic goes on.
	n.Isolate("eu")
	if _, err := udpRTT(us1, eu.IP.String()+":9000"); err == nil {
		t.Error("UDP crossed a cut")
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("TCP crossed a cut")
	}
	if rtt := tcpRTT(t, r2, c2); rtt > 50*time.Millisecond {
		t.Errorf("US↔US round trip during the EU cut %v", rtt)
	}
	// Heal: the TCP connection recovers by retransmission.
	n.Rejoin("eu")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("after heal: %q %v", line, err)
	}

	// A host-pair cut leaves the rest alone.
	n.CutHosts("us-1", "us-2")
	if _, err := udpRTT(us1, us2.IP.String()+":9000"); err == nil {
		t.Error("UDP crossed a host cut")
	}
	if _, err := udpRTT(us1, eu.IP.String()+":9000"); err != nil {
		t.Errorf("us-1 → eu-1 during a us-1/us-2 cut: %v", err)
	}
	n.HealHosts("us-1", "us-2")

	// Bandwidth: 256 KiB at 1 MiB/s takes about a quarter of a second more
	// than without the cap.
	n.SetBandwidth("us", "us", 1<<20)
	payload := strings.Repeat("x", 256<<10-1) + "\n"
	start := time.Now()
	go func() { _, _ = c2.Write([]byte(payload)) }()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r2.ReadString('\n')
	if err != nil || len(line) != len(payload) {
		t.Fatalf("bulk echo: %d bytes, %v", len(line), err)
	}
	// Both directions are capped: ≥ 2 × 0.25 s, minus slack.
	if took := time.Since(start); took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("256 KiB each way at 1 MiB/s took %v", took)
	}
	st := n.Stats()
	if st.Forwarded == 0 || st.Dropped == 0 {
		t.Errorf("stats %+v", st)
	}
	fmt.Fprintf(os.Stderr, "wan: EU↔US TCP RTT %v; forwarder %+v\n", rtt, st)
}

// TestCommandRunsInTheHost: a process started with Command sees the host's
// address and not the machine's interfaces.
func TestCommandRunsInTheHost(t *testing.T) {
	n := newNet(t)
	h, err := n.AddHost("eu-1", "eu")
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.Command(context.Background(), "ip", "-4", "-o", "addr").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	if !strings.Contains(string(out), h.IP.String()) || strings.Count(string(out), "\n") != 2 {
		t.Errorf("addresses inside the host:\n%s", out)
	}
}
