package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/serverconfig"
)

func TestClusterFlagsOverrideTheConfig(t *testing.T) {
	cfg := &serverconfig.Config{Cluster: serverconfig.Cluster{NodeName: "a", Region: "eu", Join: []string{"old:7946"}}}
	f := serveFlags{join: []string{"10.0.0.1:7946", "eu-2.example.net:7946"}, region: "us", nodeName: "us-1"}
	if err := f.applyCluster(cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Cluster.Join, f.join) || cfg.Cluster.Region != "us" || cfg.Cluster.NodeName != "us-1" {
		t.Errorf("cluster config after flags: %+v", cfg.Cluster)
	}
	// No flags: the config stands.
	cfg = &serverconfig.Config{Cluster: serverconfig.Cluster{NodeName: "a", Region: "eu", Join: []string{"old:7946"}}}
	if err := (serveFlags{}).applyCluster(cfg); err != nil || cfg.Cluster.NodeName != "a" || cfg.Cluster.Join[0] != "old:7946" {
		t.Errorf("without flags: %+v %v", cfg.Cluster, err)
	}
	err := (serveFlags{join: []string{"no-port"}}).applyCluster(cfg)
	if err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("--join without a port: %v", err)
	}
}
