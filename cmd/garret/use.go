package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

const nixosKey = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="

func useCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "use CACHE",
		Short: "Add the cache as a substituter (and its key, and a netrc entry) to your nix.conf",
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
			if cc.SubstituterEndpoint == nil || cc.PublicKey == nil {
				return fmt.Errorf("the server did not return the cache's substituter endpoint and public key")
			}
			conf := userNixConf()
			lines, err := readLines(conf)
			if err != nil {
				return err
			}
			subs, err := substituters(c, *cc)
			if err != nil {
				return err
			}
			// Earlier entries of this cache (any node, any priority) give way
			// to the new ones, nearest first.
			earlier := []string{*cc.SubstituterEndpoint}
			for _, n := range cc.Nodes {
				earlier = append(earlier, n.SubstituterEndpoint)
			}
			var endpoints []string // what the token goes to
			for _, e := range subs {
				endpoints = append(endpoints, e.url)
			}
			lines = dropSubstituters(lines, append(earlier, endpoints...))
			for i := len(subs) - 1; i >= 0; i-- {
				lines = prependSetting(lines, "substituters", subs[i].setting(), "https://cache.nixos.org")
			}
			lines = prependSetting(lines, "trusted-public-keys", *cc.PublicKey, nixosKey)
			if cc.UploadEndpoint != nil { // Garret's: the URL for nix copy --to
				endpoints = append(endpoints, *cc.UploadEndpoint)
			}
			if c.token != "" {
				netrc := filepath.Join(filepath.Dir(conf), "netrc")
				for _, e := range endpoints {
					u, err := url.Parse(e)
					if err != nil {
						return err
					}
					if err := writeNetrc(netrc, u.Hostname(), c.token); err != nil {
						return err
					}
				}
				lines = setSetting(lines, "netrc-file", netrc)
			}
			if err := writeLines(conf, lines, 0o644); err != nil {
				return err
			}
			fmt.Printf("Configuring Nix to use %q on %s:\n", cache, conf)
			for _, e := range subs {
				fmt.Printf("+ Substituter: %s%s\n", e.setting(), e.note)
			}
			fmt.Printf("+ Trusted Public Key: %s\n", *cc.PublicKey)
			if cc.UploadEndpoint != nil {
				fmt.Printf("Push with `garret push %s PATH`, or with Nix itself:\n  nix copy --to '%s?compression=zstd' PATH\n", cache, *cc.UploadEndpoint)
			}
			return nil
		},
	}
}

// userNixConf is the first of NIX_USER_CONF_FILES, else $XDG_CONFIG_HOME/nix/nix.conf.
func userNixConf() string {
	if v := os.Getenv("NIX_USER_CONF_FILES"); v != "" {
		return strings.Split(v, ":")[0]
	}
	return filepath.Join(configHome(), "nix", "nix.conf")
}

func readLines(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}

func writeLines(p string, lines []string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), mode)
}

func settingName(line string) string {
	k, _, ok := strings.Cut(line, "=")
	if !ok {
		return ""
	}
	return strings.TrimSpace(k)
}

// prependSetting puts value first in a list setting, keeping what is there;
// a missing setting gets value and fallback (Attic's behaviour).
func prependSetting(lines []string, key, value, fallback string) []string {
	for i, l := range lines {
		if settingName(l) != key {
			continue
		}
		_, v, _ := strings.Cut(l, "=")
		items := strings.Fields(v)
		for _, it := range items {
			if it == value {
				return lines
			}
		}
		lines[i] = key + " = " + strings.Join(append([]string{value}, items...), " ")
		return lines
	}
	return append(lines, key+" = "+value+" "+fallback)
}

// setSetting replaces or adds a scalar setting.
func setSetting(lines []string, key, value string) []string {
	for i, l := range lines {
		if settingName(l) == key {
			lines[i] = key + " = " + value
			return lines
		}
	}
	return append(lines, key+" = "+value)
}

// writeNetrc sets the password of host's entry, keeping other entries.
func writeNetrc(p, host, token string) error {
	lines, err := readLines(p)
	if err != nil {
		return err
	}
	var out []string
	skip := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "machine" {
			skip = f[1] == host
		}
		if !skip && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	out = append(out, "machine "+host, "password "+token)
	return writeLines(p, out, 0o600)
}

// dropSubstituters removes from the substituters setting every entry whose
// URL (without its query) is one of urls.
func dropSubstituters(lines []string, urls []string) []string {
	drop := map[string]bool{}
	for _, u := range urls {
		drop[strings.TrimSuffix(u, "/")] = true
	}
	for i, l := range lines {
		if settingName(l) != "substituters" {
			continue
		}
		_, v, _ := strings.Cut(l, "=")
		var keep []string
		for _, it := range strings.Fields(v) {
			base, _, _ := strings.Cut(it, "?")
			if !drop[strings.TrimSuffix(base, "/")] {
				keep = append(keep, it)
			}
		}
		lines[i] = "substituters = " + strings.Join(keep, " ")
	}
	return lines
}
