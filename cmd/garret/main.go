package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "garret",
		Short:         "Client for Garret (and Attic) binary caches",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(loginCmd(), cacheCmd(), useCmd(), pushCmd(), watchCmd(), pathCmd(), tokenCmd(), clusterCmd())
	return root
}

func loginCmd() *cobra.Command {
	var setDefault bool
	cmd := &cobra.Command{
		Use:   "login NAME ENDPOINT [TOKEN]",
		Short: "Save a server's endpoint and token in $XDG_CONFIG_HOME/garret/config.toml",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := loadConfig()
			if err != nil {
				return err
			}
			entry := cfg.Servers[args[0]]
			entry.Endpoint = args[1]
			if len(args) == 3 {
				entry.Token, entry.TokenFile = args[2], ""
			}
			cfg.Servers[args[0]] = entry
			if setDefault || len(cfg.Servers) == 1 || cfg.DefaultServer == "" {
				cfg.DefaultServer = args[0]
			}
			if err := cfg.save(); err != nil {
				return err
			}
			fmt.Printf("✍️ Configuring server %q\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&setDefault, "set-default", false, "make this the default server")
	return cmd
}

// connectServer connects to a named server, or the default one, for commands
// that concern no cache.
func connectServer(server string) (*apiClient, error) {
	ref := "x"
	if server != "" {
		ref = server + ":x"
	}
	c, _, _, err := connect(ref)
	return c, err
}

// connect resolves a cache reference to a client and cache name.
func connect(ref string) (*apiClient, string, string, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, "", "", err
	}
	server, srv, cache, err := cfg.resolve(ref)
	if err != nil {
		return nil, "", "", err
	}
	c, err := newClient(srv)
	return c, server, cache, err
}
