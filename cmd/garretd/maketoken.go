package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	neturl "net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/internal/humantime"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/node"
)

// makeTokenCmd mirrors `atticadm make-token`. It reads only the config and the
// signing secret, never the data dir, so it works while the node runs.
func makeTokenCmd(config *string) *cobra.Command {
	var o token.MintOptions
	var validity string
	var dump bool
	cmd := &cobra.Command{
		Use:   "make-token",
		Short: "Mint a token (atticadm make-token's flags)",
		Example: `  garretd make-token --sub alice --validity '1 hour' --pull '*' --push '*'
  garretd make-token --sub ci --validity 10y --pull 'dev-*' --push 'dev-*' --pull prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := humantime.Parse(validity)
			if err != nil {
				return fmt.Errorf("--validity: %w", err)
			}
			o.Validity, o.Now = d, time.Now()
			claims, err := token.NewClaims(o)
			if err != nil {
				return err
			}
			if dump {
				b, err := json.MarshalIndent(claims, "", "  ")
				if err != nil {
					return err
				}
				fmt.Println(string(b))
				return nil
			}
			cfg, err := serverconfig.Load(*config, os.Getenv)
			if err != nil {
				return err
			}
			if cfg.Origin != "" {
				fmt.Fprintln(os.Stderr, cfg.Origin) // the token is signed with Attic's key
			}
			auth, err := node.TokenAuthority(cfg)
			if err != nil {
				return err
			}
			signed, err := auth.Sign(claims)
			if err != nil {
				return err
			}
			fmt.Println(signed)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Subject, "sub", "", "the subject (user name) of the token")
	fl.StringVar(&validity, "validity", "", "how long the token is valid, e.g. '1 hour', '10y', '3 months'")
	fl.StringArrayVar(&o.Pull, "pull", nil, "cache name or pattern the token may pull from (repeatable)")
	fl.StringArrayVar(&o.Push, "push", nil, "cache name or pattern the token may push to")
	fl.StringArrayVar(&o.Delete, "delete", nil, "cache name or pattern the token may delete paths from")
	fl.StringArrayVar(&o.CreateCache, "create-cache", nil, "cache name or pattern the token may create")
	fl.StringArrayVar(&o.ConfigureCache, "configure-cache", nil, "cache name or pattern the token may configure")
	fl.StringArrayVar(&o.ConfigureCacheRetention, "configure-cache-retention", nil, "cache name or pattern whose retention the token may change")
	fl.StringArrayVar(&o.DestroyCache, "destroy-cache", nil, "cache name or pattern the token may destroy")
	fl.BoolVar(&o.ClusterAdmin, "cluster-admin", false, "grant Garret's cluster administration permission (token revocation, cluster commands)")
	fl.BoolVar(&dump, "dump-claims", false, "print the claims as JSON instead of a signed token")
	_ = cmd.MarkFlagRequired("sub")
	_ = cmd.MarkFlagRequired("validity")
	return cmd
}

// genSecretCmd prints a random cluster secret.
func genSecretCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gen-secret",
		Short: "Print a random cluster secret for [cluster] secret / GARRET_CLUSTER_SECRET",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Println(rand.Text() + rand.Text())
			return nil
		},
	}
}

// hostOf is the host part of a URL, as a netrc "machine" wants it.
func hostOf(url string) string {
	u, err := neturl.Parse(url)
	if err != nil {
		return url
	}
	return u.Hostname()
}

// printFirstStart prints the root token and next steps, as atticd's first start does.
func printFirstStart(cfg *serverconfig.Config, url string) error {
	auth, err := node.TokenAuthority(cfg)
	if err != nil {
		return err
	}
	all := []string{"*"}
	claims, err := token.NewClaims(token.MintOptions{
		Subject: "root", Validity: 2 * 365 * 24 * time.Hour, Now: time.Now(),
		Pull: all, Push: all, Delete: all, CreateCache: all, ConfigureCache: all,
		ConfigureCacheRetention: all, DestroyCache: all, ClusterAdmin: true,
	})
	if err != nil {
		return err
	}
	signed, err := auth.Sign(claims)
	if err != nil {
		return err
	}
	fmt.Printf(`
Welcome to Garret!

A config was written to %s (data in %s).
The node listens on %s

Root token (all permissions, valid 2 years; keep it secret):

%s

Next, create a cache and push to it:

  export TOKEN=%s
  curl -fsS -X POST -H "Authorization: Bearer $TOKEN" %s_api/v1/cache-config/hello \
    -d '{"keypair":"Generate","is_public":false,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":["cache.nixos.org-1"]}'
  mkdir -p ~/.config/nix && printf 'machine %s\npassword %%s\n' "$TOKEN" > ~/.config/nix/netrc
  nix copy --option netrc-file ~/.config/nix/netrc --to '%shello?compression=zstd' $(nix-build '<nixpkgs>' -A hello)

More tokens: garretd make-token --sub alice --validity '1 month' --pull hello --push hello

`, cfg.Path, cfg.DataDir, url, signed, signed, url, hostOf(url), url)
	return nil
}
