package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

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
	var server, subject, cache, before string
	cmd := &cobra.Command{Use: "token", Short: "Manage tokens"}
	revoke := &cobra.Command{
		Use:   "revoke [JTI|TOKEN] [--subject S] [--cache PATTERN] [--issued-before TIME]",
		Short: "Revoke tokens on every node (needs the cluster-admin permission)",
		Long: `Revoke one token by its jti (or the token itself), or every token matching a rule:
--subject S (tokens whose sub is S), --cache PATTERN (tokens granting anything on a cache the pattern
matches), or both, issued before --issued-before (RFC 3339 or YYYY-MM-DD, UTC; default: now).`,
		Example: `  garret token revoke 3f2a…
  garret token revoke --subject alice
  garret token revoke --cache 'prod-*' --issued-before 2026-12-01T00:00:00Z`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req, err := revokeRequest(args, subject, cache, before)
			if err != nil {
				return err
			}
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			var res v1.RevokeTokenResponse
			if err := c.doJSON("POST", "_api/v1/revoke-token", req, &res); err != nil {
				return err
			}
			if res.JTI != "" {
				fmt.Printf("🔒 Revoked token %s\n", res.JTI)
				return nil
			}
			var who []string
			if res.Subject != "" {
				who = append(who, fmt.Sprintf("of subject %q", res.Subject))
			}
			if res.Cache != "" {
				who = append(who, fmt.Sprintf("granting anything on caches matching %q", res.Cache))
			}
			when := "now"
			if res.IssuedBefore != nil {
				when = res.IssuedBefore.UTC().Format(time.RFC3339)
			}
			fmt.Printf("🔒 Revoked every token %s issued before %s\n", strings.Join(who, " and "), when)
			return nil
		},
	}
	fl := revoke.Flags()
	fl.StringVar(&server, "server", "", "server name (default: the default server)")
	fl.StringVar(&subject, "subject", "", "revoke every token with this subject (sub)")
	fl.StringVar(&cache, "cache", "", "revoke every token granting anything on a cache this name or pattern matches")
	fl.StringVar(&before, "issued-before", "", "with --subject or --cache: only tokens issued before this time (RFC 3339 or YYYY-MM-DD; default: now)")
	cmd.AddCommand(revoke)
	return cmd
}

// revokeRequest builds the request of token revoke: a jti or token, or a rule.
func revokeRequest(args []string, subject, cache, before string) (v1.RevokeTokenRequest, error) {
	rule := subject != "" || cache != ""
	switch {
	case len(args) == 1 && (rule || before != ""):
		return v1.RevokeTokenRequest{}, errors.New("give a token id (or token), or --subject/--cache, not both")
	case len(args) == 1 && strings.Count(args[0], ".") == 2:
		return v1.RevokeTokenRequest{Token: args[0]}, nil
	case len(args) == 1:
		return v1.RevokeTokenRequest{JTI: args[0]}, nil
	case !rule:
		return v1.RevokeTokenRequest{}, errors.New("give a token id (or token), --subject or --cache")
	}
	req := v1.RevokeTokenRequest{Subject: subject, Cache: cache}
	if before != "" {
		t, err := parseTime(before)
		if err != nil {
			return v1.RevokeTokenRequest{}, err
		}
		req.IssuedBefore = &t
	}
	return req, nil
}

// parseTime reads RFC 3339 or a UTC date.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--issued-before %q: not RFC 3339 (2026-12-01T15:04:05Z) or a date (2026-12-01)", s)
}
