package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/garret-cache/garret/api/v1"
)

func pathCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "path", Short: "Manage store paths in a cache"}
	cmd.AddCommand(&cobra.Command{
		Use:   "delete CACHE PATH...",
		Short: "Delete store paths from a cache (needs the delete permission)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			c, _, cache, err := connect(args[0])
			if err != nil {
				return err
			}
			var hashes []string
			for _, p := range args[1:] {
				base := filepath.Base(p)
				if len(base) < 32 {
					return fmt.Errorf("%q is not a store path or hash", p)
				}
				hashes = append(hashes, base[:32])
			}
			var res v1.DeletePathsResponse
			if err := c.doJSON("POST", "_api/v1/delete-paths", v1.DeletePathsRequest{Cache: cache, StorePathHashes: hashes}, &res); err != nil {
				return err
			}
			fmt.Printf("🗑️ Deleted %d of %d path(s) from %q\n", res.Deleted, len(hashes), cache)
			return nil
		},
	})
	return cmd
}

func tokenCmd() *cobra.Command {
	var server string
	cmd := &cobra.Command{Use: "token", Short: "Manage tokens"}
	revoke := &cobra.Command{
		Use:   "revoke JTI|TOKEN",
		Short: "Revoke a token on every node (needs the cluster-admin permission)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			req := v1.RevokeTokenRequest{JTI: args[0]}
			if strings.Count(args[0], ".") == 2 {
				req = v1.RevokeTokenRequest{Token: args[0]}
			}
			var res v1.RevokeTokenResponse
			if err := c.doJSON("POST", "_api/v1/revoke-token", req, &res); err != nil {
				return err
			}
			fmt.Printf("🔒 Revoked token %s\n", res.JTI)
			return nil
		},
	}
	revoke.Flags().StringVar(&server, "server", "", "server name (default: the default server)")
	cmd.AddCommand(revoke)
	return cmd
}
