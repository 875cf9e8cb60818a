package serverconfig

import (
	"strings"
	"testing"
)

// TestLoad_FlyMachineDefaults: on a fly.io Machine, the [cluster] keys a
// config leaves empty come from FLY_REGION, FLY_MACHINE_ID and
// FLY_PRIVATE_IP (advertised with the listen ports); keys the config sets,
// listen addresses bound to one address, port 0 and a missing or bad
// FLY_PRIVATE_IP are left alone, and nothing changes outside fly.io.
func TestLoad_FlyMachineDefaults(t *testing.T) {
	fly := map[string]string{"HOME": "/h", "FLY_REGION": "sea", "FLY_MACHINE_ID": "3d8d9930a12389", "FLY_PRIVATE_IP": "fdaa:0:18:a7b:7d:f066:b83b:2"}
	listen := "[cluster]\ngossip-listen = \"[::]:7946\"\np2p-listen = \"[::]:4001\"\n"
	c, err := Load(write(t, listen+hs), env(fly))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	if cl.Region != "sea" || cl.NodeName != "3d8d9930a12389" || cl.GossipAdvertise != "[fdaa:0:18:a7b:7d:f066:b83b:2]:7946" || cl.P2PAdvertise != "[fdaa:0:18:a7b:7d:f066:b83b:2]:4001" {
		t.Fatalf("on fly.io: %+v", cl)
	}
	if notes := strings.Join(c.Notes, "\n"); len(c.Notes) != 4 || !strings.Contains(notes, `region = "sea" from FLY_REGION`) || !strings.Contains(notes, "p2p-advertise") {
		t.Errorf("notes: %q", c.Notes)
	}

	// What the config says wins.
	set := "[cluster]\nregion = \"eu\"\nnode-name = \"eu-1\"\ngossip-listen = \"0.0.0.0:7946\"\ngossip-advertise = \"10.0.0.1:7946\"\np2p-listen = \"10.0.0.1:4001\"\n"
	if c, err = Load(write(t, set+hs), env(fly)); err != nil {
		t.Fatal(err)
	}
	if cl := c.Cluster; cl.Region != "eu" || cl.NodeName != "eu-1" || cl.GossipAdvertise != "10.0.0.1:7946" || cl.P2PAdvertise != "" || len(c.Notes) != 0 {
		t.Errorf("a config's own keys: %+v, notes %q", cl, c.Notes)
	}
	// Port 0, and no usable FLY_PRIVATE_IP: nothing advertised.
	if c, err = Load(write(t, "[cluster]\ngossip-listen = \"[::]:0\"\n"+hs), env(fly)); err != nil || c.Cluster.GossipAdvertise != "" {
		t.Errorf("port 0: %+v %v", c.Cluster, err)
	}
	fly["FLY_PRIVATE_IP"] = "not-an-ip"
	if c, err = Load(write(t, listen+hs), env(fly)); err != nil || c.Cluster.GossipAdvertise != "" || c.Cluster.P2PAdvertise != "" || c.Cluster.Region != "sea" {
		t.Errorf("bad FLY_PRIVATE_IP: %+v %v", c.Cluster, err)
	}
	// Outside fly.io.
	if c, err = Load(write(t, listen+hs), env(map[string]string{"HOME": "/h"})); err != nil || c.Cluster.Region != "" || c.Cluster.NodeName != "" || c.Cluster.GossipAdvertise != "" || len(c.Notes) != 0 {
		t.Errorf("outside fly.io: %+v %q %v", c.Cluster, c.Notes, err)
	}
}
