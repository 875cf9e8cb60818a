package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/garret-cache/garret/api/v1"
)

func clusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect and manage the cluster (needs a --cluster-admin token)"}
	var server string
	cmd.PersistentFlags().StringVar(&server, "server", "", "server name (default: the default server)")
	var asJSON, web bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Nodes, regions, roles, leader, RTTs and Raft progress as the server sees them",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			if web {
				return printWebLink(c, os.Stdout, os.Stderr)
			}
			var st v1.ClusterStatus
			if err := c.doJSON("GET", "_api/v1/cluster", nil, &st); err != nil {
				return err
			}
			return printAs(asJSON, st, printStatus)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	status.Flags().BoolVar(&web, "web", false, "print a link (valid 10 minutes) that opens the cluster page in a browser")
	status.MarkFlagsMutuallyExclusive("json", "web")
	join := &cobra.Command{
		Use:   "join ADDR...",
		Short: "Have the server gossip-join existing members (their gossip host:port); the leader then adds it to Raft",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			var res v1.ClusterJoinResponse
			if err := c.doJSON("POST", "_api/v1/cluster/join", v1.ClusterJoinRequest{Addrs: args}, &res); err != nil {
				return err
			}
			fmt.Printf("🤝 Joined: contacted %d of %d address(es)\n", res.Contacted, len(args))
			return nil
		},
	}
	leave := &cobra.Command{
		Use:   "leave",
		Short: "Have the server leave the cluster gracefully (handing over leadership first); its garretd then exits",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			var res v1.ClusterLeaveResponse
			if err := c.doJSON("POST", "_api/v1/cluster/leave", nil, &res); err != nil {
				return err
			}
			fmt.Printf("👋 %s\n", res.Message)
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a node that will not come back (name or peer ID) from the Raft configuration",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			var res v1.ClusterRemoveResponse
			if err := c.doJSON("POST", "_api/v1/cluster/remove", v1.ClusterRemoveRequest{Node: args[0]}, &res); err != nil {
				return err
			}
			fmt.Printf("🗑️ %s\n", res.Message)
			return nil
		},
	}
	cmd.AddCommand(status, join, leave, remove, scrubCmd(&server), gcCmd(&server))
	return cmd
}

// scrubCmd is `garret cluster scrub`: the server checks every chunk it
// stores and repairs the bad ones from its peers, then the counts are
// printed. It waits as long as the scrub takes; interrupting it stops the
// scrub.
func scrubCmd(server *string) *cobra.Command {
	var rateMiB int64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scrub",
		Short: "Have the server check every chunk it stores now, drop bad ones and fetch them again from peers",
		Long: "Have the server check every chunk it stores now (decompressed and hashed against its id), drop the bad\n" +
			"ones and fetch them again from its peers; waits until the scrub ends (Ctrl-C stops it) and prints the counts.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if rateMiB < 0 {
				return fmt.Errorf("--rate %d: give MiB per second, at least 1 (or 0 for the server's scrub-rate)", rateMiB)
			}
			c, err := connectServer(*server)
			if err != nil {
				return err
			}
			c.waitForAnswer() // the answer comes when the scrub ends
			var res v1.ClusterScrubResponse
			if err := c.doJSON("POST", "_api/v1/cluster/scrub", v1.ClusterScrubRequest{Rate: rateMiB << 20}, &res); err != nil {
				return err
			}
			return printAs(asJSON, res, printScrub)
		},
	}
	cmd.Flags().Int64Var(&rateMiB, "rate", 0, "MiB of stored frames read per second (default: the server's [cluster] scrub-rate)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// gcCmd is `garret cluster gc`: the server runs a garbage collection pass
// now (retention too, if it leads the cluster) and what it freed is
// printed. It waits as long as the pass takes.
func gcCmd(server *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Have the server run a garbage collection pass now and print what it freed",
		Long: "Have the server run a garbage collection pass now: if it is the Raft leader, retention first removes the\n" +
			"objects neither pushed nor downloaded within their cache's retention period; then the server deletes the\n" +
			"chunks no object references any more and compacts its segment files. Waits until the pass ends.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := connectServer(*server)
			if err != nil {
				return err
			}
			c.waitForAnswer()
			var res v1.ClusterGCResponse
			if err := c.doJSON("POST", "_api/v1/cluster/gc", struct{}{}, &res); err != nil {
				return err
			}
			return printAs(asJSON, res, printGC)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printGC(w io.Writer, res v1.ClusterGCResponse) {
	fmt.Fprintf(w, "🧹 Garbage collection on %s took %.1f s\n", short(res.Node), float64(res.TookMs)/1000)
	fmt.Fprintf(w, "   %d objects expired (retention)\n", res.ObjectsExpired)
	fmt.Fprintf(w, "   %d manifests and %d chunks deleted, %s of frames freed\n", res.ManifestsDeleted, res.ChunksDeleted, mib(res.BytesFreed))
	fmt.Fprintf(w, "   %d segment files compacted, %s of disk given back\n", res.SegmentsCompacted, mib(res.DiskBytesFreed))
}

// printWebLink asks the server for a signed link to its cluster page and
// prints it alone on out (for scripts and terminals that open URLs), its
// validity on info.
func printWebLink(c *apiClient, out, info io.Writer) error {
	var res v1.WebLinkResponse
	if err := c.doJSON("POST", "_api/v1/cluster/web-link", struct{}{}, &res); err != nil {
		return err
	}
	if !strings.HasPrefix(res.URL, "http://") && !strings.HasPrefix(res.URL, "https://") {
		return fmt.Errorf("the server answered with %q, which is not a web link", res.URL)
	}
	fmt.Fprintln(out, res.URL)
	fmt.Fprintf(info, "🌐 Open it in a browser before %s (until then anyone holding it can view the cluster page; the browser session it opens lasts 12 hours).\n", res.ExpiresAt.Local().Format("15:04:05"))
	return nil
}

// printAs prints v to stdout as indented JSON, or as text.
func printAs[T any](asJSON bool, v T, text func(io.Writer, T)) error {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(os.Stdout, v)
	return nil
}

func printScrub(w io.Writer, res v1.ClusterScrubResponse) {
	fmt.Fprintf(w, "🔍 Scrubbed %s: %d chunks, %s checked in %.1f s\n", short(res.Node), res.Chunks, mib(res.Bytes), float64(res.TookMs)/1000)
	if res.Bad == 0 {
		fmt.Fprintln(w, "✅ No bad chunks")
		return
	}
	fmt.Fprintf(w, "⚠️ %d bad chunk(s) dropped: %d repaired from peers, %d not repaired\n", res.Bad, res.Repaired, res.Unrepaired)
	for _, id := range res.BadChunks {
		fmt.Fprintf(w, "   %s\n", id)
	}
	if res.Unrepaired > 0 {
		fmt.Fprintln(w, "   Chunks no peer had stay missing on this node: reads fetch them from a peer that gets them later, or a re-push stores them.")
	}
}

func printStatus(w io.Writer, st v1.ClusterStatus) {
	fmt.Fprintf(w, "answered by %s; term %d; applied %d of %d committed entries\n\n", short(st.Node), st.Term, st.AppliedIndex, st.CommitIndex)
	const row = "%-16s %-12s %-8s %-9s %-7s %9s  %-11s %9s %6s  %s\n"
	fmt.Fprintf(w, row, "NODE", "REGION", "HEALTH", "ROLE", "LEADER", "RTT", "STATE", "APPLIED", "TERM", "API")
	for _, n := range st.Nodes {
		leader, rtt := "", "-"
		if n.Leader {
			leader = "*"
		}
		if n.RTTMs > 0 {
			rtt = fmt.Sprintf("%.1f ms", n.RTTMs)
		}
		state, applied, term := n.State, fmt.Sprint(n.AppliedIndex), fmt.Sprint(n.Term)
		if n.Unreachable {
			state, applied, term = "unreachable", "-", "-"
		}
		health := n.Health
		if health == "" {
			health = "-" // an older node does not say
		}
		fmt.Fprintf(w, row, short(n.Name), n.Region, health, n.Role, leader, rtt, state, applied, term, n.APIURL)
	}
	if len(st.Departed) > 0 {
		fmt.Fprintf(w, "\ndeparted (no longer Raft members):\n")
		for _, d := range st.Departed {
			fmt.Fprintf(w, "%-16s %-12s %-5s since %s\n", short(d.Name), d.Region, d.Health, d.Since.UTC().Format(time.RFC3339))
		}
	}
	printReplication(w, st)
}

// printReplication is the table of what each node still has to copy.
func printReplication(w io.Writer, st v1.ClusterStatus) {
	fmt.Fprintf(w, "\nreplication:\n")
	const row = "%-16s %8s %10s %9s %12s %8s %10s %6s\n"
	fmt.Fprintf(w, row, "NODE", "BACKLOG", "BYTES", "LAG", "RATE", "COPIED", "COPIED B", "FAILED")
	missing := 0
	for _, n := range st.Nodes {
		r := n.Replication
		if r == nil {
			fmt.Fprintf(w, row, short(n.Name), "-", "-", "-", "-", "-", "-", "-")
			continue
		}
		missing += r.Backlog
		backlog := fmt.Sprint(r.Backlog)
		if r.Scanning {
			backlog = fmt.Sprintf("scan %d", r.Scanned)
		}
		fmt.Fprintf(w, row, short(n.Name), backlog, mib(r.BacklogBytes), (time.Duration(r.LagSeconds*10) * time.Second / 10).String(),
			mib(int64(r.FetchBytesPerSecond))+"/s", fmt.Sprint(r.Fetched), mib(r.FrameBytes), fmt.Sprint(r.Failed))
	}
	fmt.Fprintf(w, "copies below target: %d (objects the nodes above should hold and do not yet; - : a node that does not sync or did not answer)\n", missing)
}

func short(id string) string {
	if len(id) > 16 && strings.HasPrefix(id, "12D3") {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}
