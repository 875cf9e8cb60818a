package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/garret-cache/garret/api/v1"
)

func clusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster (needs a --cluster-admin token)"}
	var asJSON bool
	var server string
	status := &cobra.Command{
		Use:   "status",
		Short: "Nodes, regions, roles, leader and RTTs as the server sees them",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			var st v1.ClusterStatus
			if err := c.doJSON("GET", "_api/v1/cluster", nil, &st); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(os.Stdout, st)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	status.Flags().StringVar(&server, "server", "", "server name (default: the default server)")
	cmd.AddCommand(status)
	return cmd
}

func printStatus(w io.Writer, st v1.ClusterStatus) {
	fmt.Fprintf(w, "answered by %s; applied %d of %d committed entries\n\n", short(st.Node), st.AppliedIndex, st.CommitIndex)
	fmt.Fprintf(w, "%-16s %-12s %-9s %-7s %9s  %s\n", "NODE", "REGION", "ROLE", "LEADER", "RTT", "API")
	for _, n := range st.Nodes {
		leader, rtt := "", "-"
		if n.Leader {
			leader = "*"
		}
		if n.RTTMs > 0 {
			rtt = fmt.Sprintf("%.1f ms", n.RTTMs)
		}
		fmt.Fprintf(w, "%-16s %-12s %-9s %-7s %9s  %s\n", short(n.Name), n.Region, n.Role, leader, rtt, n.APIURL)
	}
}

func short(id string) string {
	if len(id) > 16 && strings.HasPrefix(id, "12D3") {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}
