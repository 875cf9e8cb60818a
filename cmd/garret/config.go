package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// serverEntry is one [servers.NAME] table, as in Attic's client config.
type serverEntry struct {
	Endpoint  string `toml:"endpoint"`
	Token     string `toml:"token,omitempty"`
	TokenFile string `toml:"token-file,omitempty"`
}

// clientConfig is $XDG_CONFIG_HOME/garret/config.toml.
type clientConfig struct {
	DefaultServer string                 `toml:"default-server,omitempty"`
	Servers       map[string]serverEntry `toml:"servers"`
}

func configHome() string {
	if v := os.Getenv("XDG_CONFIG_HOME"); v != "" {
		return v
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config")
}

func configPath() string { return filepath.Join(configHome(), "garret", "config.toml") }

// loadConfig reads Garret's config, else Attic's, else an empty one.
func loadConfig() (*clientConfig, error) {
	cfg := &clientConfig{Servers: map[string]serverEntry{}}
	for _, p := range []string{configPath(), filepath.Join(configHome(), "attic", "config.toml")} {
		if _, err := toml.DecodeFile(p, cfg); err == nil {
			if cfg.Servers == nil {
				cfg.Servers = map[string]serverEntry{}
			}
			return cfg, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return cfg, nil
}

func (c *clientConfig) save() error {
	p := configPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := toml.NewEncoder(f).Encode(c); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// token returns the server's token (token-file is read and trimmed).
func (s serverEntry) token() (string, error) {
	if s.TokenFile != "" {
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return "", fmt.Errorf("token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return s.Token, nil
}

// resolve splits "server:cache" or "cache" (default server).
func (c *clientConfig) resolve(ref string) (serverName string, srv serverEntry, cache string, err error) {
	serverName, cache, ok := strings.Cut(ref, ":")
	if !ok {
		cache, serverName = ref, c.DefaultServer
		if serverName == "" && len(c.Servers) > 0 {
			names := make([]string, 0, len(c.Servers))
			for n := range c.Servers {
				names = append(names, n)
			}
			sort.Strings(names)
			serverName = names[0]
		}
	}
	if serverName == "" {
		return "", srv, "", errors.New("no server configured: run `garret login NAME URL TOKEN` first")
	}
	srv, found := c.Servers[serverName]
	if !found {
		return "", srv, "", fmt.Errorf("no server named %q: run `garret login %s URL TOKEN`", serverName, serverName)
	}
	if cache == "" {
		return "", srv, "", errors.New("missing cache name")
	}
	return serverName, srv, cache, nil
}
