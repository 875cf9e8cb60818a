package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/humantime"
)

func cacheCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cache", Short: "Create, inspect, configure, list and destroy caches"}
	cmd.AddCommand(cacheCreateCmd(), cacheInfoCmd(), cacheConfigureCmd(), cacheDestroyCmd(), cacheListCmd())
	return cmd
}

func cacheCreateCmd() *cobra.Command {
	var public bool
	var priority int32
	var upstream []string
	var storeDir string
	var jobs int
	cmd := &cobra.Command{
		Use:   "create CACHE",
		Short: "Create a cache with a new signing key",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, server, cache, err := connect(args[0])
			if err != nil {
				return err
			}
			req := v1.CreateCacheRequest{Keypair: v1.KeypairConfig{Generate: true}, IsPublic: public, StoreDir: storeDir,
				Priority: priority, UpstreamCacheKeyNames: upstream}
			if err := c.doJSON("POST", "_api/v1/cache-config/"+cache, req, nil); err != nil {
				return err
			}
			fmt.Printf("✨ Created cache %q on %q\n", cache, server)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&public, "public", false, "anyone may pull from the cache")
	f.Int32Var(&priority, "priority", 41, "the cache's priority (lower is preferred by Nix)")
	f.StringArrayVar(&upstream, "upstream-cache-key-name", []string{"cache.nixos.org-1"}, "paths signed by this key are not pushed")
	f.StringVar(&storeDir, "store-dir", "/nix/store", "the Nix store directory")
	f.IntVarP(&jobs, "jobs", "j", 0, "accepted for the fly.io guide's command line; does nothing here")
	_ = f.MarkHidden("store-dir")
	return cmd
}

func cacheInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info CACHE",
		Short: "Show a cache's public key, endpoints and settings",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, _, cache, err := connect(args[0])
			if err != nil {
				return err
			}
			cc, err := c.cacheConfig(cache)
			if err != nil {
				return err
			}
			str := func(p *string) string {
				if p == nil {
					return ""
				}
				return *p
			}
			retention := "Global default"
			if cc.RetentionPeriod != nil && !cc.RetentionPeriod.Global {
				retention = humantime.Format(time.Duration(cc.RetentionPeriod.Period) * time.Second)
			}
			fmt.Printf("               Public: %v\n", cc.IsPublic != nil && *cc.IsPublic)
			fmt.Printf("           Public Key: %s\n", str(cc.PublicKey))
			fmt.Printf("Binary Cache Endpoint: %s\n", str(cc.SubstituterEndpoint))
			fmt.Printf("         API Endpoint: %s\n", str(cc.APIEndpoint))
			if cc.UploadEndpoint != nil {
				fmt.Printf("      Upload Endpoint: %s (for nix copy --to)\n", *cc.UploadEndpoint)
			}
			fmt.Printf("      Store Directory: %s\n", str(cc.StoreDir))
			if cc.Priority != nil {
				fmt.Printf("             Priority: %d\n", *cc.Priority)
			}
			if cc.UpstreamCacheKeyNames != nil {
				fmt.Printf("  Upstream Cache Keys: %s\n", strings.Join(*cc.UpstreamCacheKeyNames, ", "))
			}
			fmt.Printf("     Retention Period: %s\n", retention)
			return nil
		},
	}
}

func cacheConfigureCmd() *cobra.Command {
	var public, private, regenerate, resetRetention bool
	var priority int32
	var upstream []string
	var retention string
	cmd := &cobra.Command{
		Use:   "configure CACHE",
		Short: "Change a cache's settings (only what is asked is sent)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, cache, err := connect(args[0])
			if err != nil {
				return err
			}
			var p v1.CacheConfig
			if public || private {
				p.IsPublic = &public
			}
			if regenerate {
				p.Keypair = &v1.KeypairConfig{Generate: true}
			}
			if cmd.Flags().Changed("priority") {
				p.Priority = &priority
			}
			if cmd.Flags().Changed("upstream-cache-key-name") {
				p.UpstreamCacheKeyNames = &upstream
			}
			switch {
			case resetRetention:
				p.RetentionPeriod = &v1.RetentionPeriodConfig{Global: true}
			case retention != "":
				d, err := humantime.Parse(retention)
				if err != nil {
					return fmt.Errorf("--retention-period: %w", err)
				}
				p.RetentionPeriod = &v1.RetentionPeriodConfig{Period: uint32(d / time.Second)}
			}
			if err := c.doJSON("PATCH", "_api/v1/cache-config/"+cache, p, nil); err != nil {
				return err
			}
			fmt.Printf("✅ Configured %q on %q\n", cache, server)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&public, "public", false, "make the cache public")
	f.BoolVar(&private, "private", false, "make the cache private")
	f.BoolVar(&regenerate, "regenerate-keypair", false, "replace the signing key")
	f.Int32Var(&priority, "priority", 41, "set the priority")
	f.StringArrayVar(&upstream, "upstream-cache-key-name", nil, "set the upstream key names (repeatable)")
	f.StringVar(&retention, "retention-period", "", "e.g. '30 days'")
	f.BoolVar(&resetRetention, "reset-retention-period", false, "use the server's default retention")
	cmd.MarkFlagsMutuallyExclusive("public", "private")
	cmd.MarkFlagsMutuallyExclusive("retention-period", "reset-retention-period")
	return cmd
}

func cacheDestroyCmd() *cobra.Command {
	var noConfirm bool
	cmd := &cobra.Command{
		Use:   "destroy CACHE",
		Short: "Destroy a cache and everything in it",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, server, cache, err := connect(args[0])
			if err != nil {
				return err
			}
			if !noConfirm {
				fmt.Printf("⚠️ This destroys %q on %q and every path in it.\nType the cache name to confirm: ", cache, server)
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if strings.TrimSpace(line) != cache {
					return errors.New("the name did not match; nothing was destroyed")
				}
			}
			if err := c.doJSON("DELETE", "_api/v1/cache-config/"+cache, nil, nil); err != nil {
				return err
			}
			fmt.Printf("🗑️ Destroyed cache %q on %q\n", cache, server)
			return nil
		},
	}
	cmd.Flags().BoolVar(&noConfirm, "no-confirm", false, "do not ask")
	return cmd
}

func cacheListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list [SERVER]",
		Short: "List the caches your token can see",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			c, err := connectServer(server)
			if err != nil {
				return err
			}
			var res v1.ListCachesResponse
			if err := c.doJSON("GET", "_api/v1/caches", nil, &res); err != nil {
				return err
			}
			for _, cc := range res.Caches {
				vis := "private"
				if cc.IsPublic {
					vis = "public"
				}
				fmt.Printf("%-30s %-8s priority %-4d %s\n", cc.Name, vis, cc.Priority, cc.PublicKey)
			}
			return nil
		},
	}
}
