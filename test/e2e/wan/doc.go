// Package wan emulates a wide-area network on one machine for the e2e tests:
// every host is a network namespace of its own with one TUN interface, and a
// user-space forwarder in the test process moves IPv4 packets between the
// TUNs, applying per-region-pair latency, an optional bandwidth cap, and
// cuts of a host pair or a region pair that the test changes at run time.
//
// Why namespaces and TUN rather than a link emulator compiled into garretd:
// the binary under test is the production one, unchanged, and every protocol
// it speaks (memberlist's UDP and TCP, libp2p's TCP, and anything added
// later) crosses the emulated links without being wrapped. Each host binds
// the same ports on its own address, so memberlist's advertised address is the
// one peers really dial. The kernel has no netem here, and a TCP proxy per
// link could carry neither UDP nor memberlist's advertised addresses.
//
// Hosts get addresses 10.<n>.<region>.<i> inside their own namespaces, and
// nothing in the machine's own namespace routes to them: the only way in is
// Host.Command (ip netns exec) and Host.DialContext (a socket made in the
// host's namespace). It needs root, iproute2 and /dev/net/tun.
package wan
