package serverconfig

import (
	"fmt"
	"net"
)

// flyDefaults fills the per-machine [cluster] keys a config leaves empty
// from the variables fly.io sets in every Machine: region from FLY_REGION,
// node-name from FLY_MACHINE_ID, and gossip-advertise / p2p-advertise from
// FLY_PRIVATE_IP (the Machine's 6PN address) with the port of gossip-listen /
// p2p-listen, when those listen on every address ("[::]:7946"). fly.io gives
// every Machine of an app the same files and does not expand variables in
// them or in the command, so without this one server.toml could not serve a
// multi-region app (deploy/fly.toml). A key the config sets always wins;
// outside fly.io the variables are unset and nothing changes. Each value
// taken is noted in c.Notes.
func (c *Config) flyDefaults(getenv func(string) string) {
	cl := &c.Cluster
	take := func(dst *string, key, env string) {
		if v := getenv(env); *dst == "" && v != "" {
			*dst = v
			c.Notes = append(c.Notes, fmt.Sprintf("[cluster] %s = %q from %s", key, v, env))
		}
	}
	take(&cl.Region, "region", "FLY_REGION")
	take(&cl.NodeName, "node-name", "FLY_MACHINE_ID")
	ip := net.ParseIP(getenv("FLY_PRIVATE_IP"))
	if ip == nil {
		return
	}
	advertise := func(dst *string, key, listen string) {
		host, port, err := net.SplitHostPort(listen)
		if *dst != "" || err != nil || port == "0" || (host != "" && !net.ParseIP(host).IsUnspecified()) {
			return
		}
		*dst = net.JoinHostPort(ip.String(), port)
		c.Notes = append(c.Notes, fmt.Sprintf("[cluster] %s = %q from FLY_PRIVATE_IP", key, *dst))
	}
	advertise(&cl.GossipAdvertise, "gossip-advertise", cl.GossipListen)
	advertise(&cl.P2PAdvertise, "p2p-advertise", cl.P2PListen)
}
