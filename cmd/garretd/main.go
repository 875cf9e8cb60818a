package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/spf13/cobra"

	"github.com/garret-cache/garret/internal/logbridge"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/node"
)

func main() {
	name, root := "garretd", rootCmd()
	if base := filepath.Base(os.Args[0]); adminNames[base] {
		name, root = base, adminCmd(base)
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, name+": "+err.Error())
		os.Exit(1)
	}
}

// adminNames are the names under which garretd is its admin tool, as
// atticadm is Attic's (and atticd-atticadm the NixOS module's wrapper):
// `make build` links bin/garretadm to garretd.
var adminNames = map[string]bool{"garretadm": true, "atticadm": true, "garretd-garretadm": true, "atticd-atticadm": true}

// adminCmd is the admin command set: atticadm's make-token, with atticadm's
// global -f/--config.
func adminCmd(name string) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:           name,
		Short:         "Garret server administration (atticadm's commands; the same as `garretd make-token`)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVarP(&config, "config", "f", "", "path to server.toml (default: as garretd finds it)")
	cmd.AddCommand(makeTokenCmd(&config))
	return cmd
}

type serveFlags struct {
	config string
	listen string
	mode   string
	// [cluster] overrides
	join                []string
	region, nodeName    string
	logLevel, logFormat string
	pprofListen         string
}

func rootCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:           "garretd",
		Short:         "Garret: a self-hosted, multi-region Nix binary cache (Attic-compatible)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), f) },
	}
	cmd.PersistentFlags().StringVarP(&f.config, "config", "f", "", "path to server.toml (default: $XDG_CONFIG_HOME/garret/server.toml, created on first start)")
	cmd.Flags().StringVarP(&f.listen, "listen", "l", "", "address to listen on, overriding the config's listen")
	cmd.Flags().StringVar(&f.mode, "mode", "monolithic", "Attic's run mode: monolithic or api-server (the same in Garret: the node, "+
		"which sweeps its own chunks every [garbage-collection] interval), garbage-collector-once (one sweep of the data dir of a "+
		"stopped lone node; a cluster node sweeps only while running), garbage-collector (that sweep every interval until SIGINT/SIGTERM), "+
		"or check-config (which also reports the data dir's free space)")
	cmd.Flags().StringArrayVar(&f.join, "join", nil, "gossip address (host:port) of an existing node to join; repeatable; replaces [cluster] join")
	cmd.Flags().StringVar(&f.region, "region", "", "this node's region, overriding [cluster] region")
	cmd.Flags().StringVar(&f.nodeName, "node-name", "", "this node's name, overriding [cluster] node-name")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "least level logged: debug, info, warn or error")
	cmd.Flags().StringVar(&f.logFormat, "log-format", "text", "log line format on stderr: text (key=value) or json (one object per line)")
	cmd.Flags().StringVar(&f.pprofListen, "pprof-listen", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060")
	cmd.AddCommand(makeTokenCmd(&f.config), genSecretCmd(), healthcheckCmd())
	return cmd
}

// loadConfig reads the config, or on the very first start of a node with
// none at all, writes a generated one (as atticd does in monolithic mode)
// and reports that it did.
func loadConfig(path string, generate bool) (cfg *serverconfig.Config, created bool, err error) {
	cfg, err = serverconfig.Load(path, os.Getenv)
	if errors.Is(err, serverconfig.ErrNoConfig) && path == "" && generate {
		def := serverconfig.DefaultPath(os.Getenv)
		cfg, err = serverconfig.WriteDefault(def, os.Getenv)
		return cfg, err == nil, err
	}
	return cfg, false, err
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// is set: the garbage collector works harder as the heap nears it, which
// keeps a node under the 128 MiB RSS budget during concurrent pushes. A
// running node raises it by what its pebble block caches hold
// (node.Config.MemoryLimit).
const defaultMemoryLimit = 96 << 20

// newLogger is the node's logger on w, as --log-level and --log-format ask.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func serve(ctx context.Context, f serveFlags) error {
	log, err := newLogger(os.Stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	// libp2p's loggers are process-wide: set before the node logs anything.
	gologshim.SetDefaultHandler(logbridge.Libp2p(log.Handler()))
	var memoryLimit int64 // 0: the operator's GOMEMLIMIT stands
	if os.Getenv("GOMEMLIMIT") == "" {
		memoryLimit = defaultMemoryLimit
		debug.SetMemoryLimit(memoryLimit)
	}

	// 1. Config (generated on a node's first start).
	runsNode := f.mode == "monolithic" || f.mode == "api-server"
	switch f.mode {
	case "monolithic", "api-server", "check-config", "garbage-collector", "garbage-collector-once":
	default:
		return fmt.Errorf("--mode %q is not supported: use monolithic, api-server, garbage-collector, garbage-collector-once or check-config", f.mode)
	}
	cfg, created, err := loadConfig(f.config, runsNode)
	if err != nil {
		return err
	}
	if cfg.Origin != "" {
		log.Info(cfg.Origin)
	}
	for _, n := range cfg.Notes {
		log.Info(n, "config", cfg.Path)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w, "config", cfg.Path)
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if err := f.applyCluster(cfg); err != nil {
		return err
	}
	if f.mode == "check-config" {
		// The checks node.New runs first, so a config that passes starts.
		if err := node.CheckConfig(cfg); err != nil {
			return err
		}
		fmt.Printf("config %s is valid\n", cfg.Path)
		fmt.Println(node.DiskSpace(cfg))
		return nil
	}
	if !runsNode {
		return collect(ctx, cfg, f.mode == "garbage-collector-once", log)
	}

	// 2. The node: chunk store, catalog, API; the profiler beside it.
	if f.pprofListen != "" {
		_, stop, err := listenPprof(f.pprofListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	n, err := node.New(node.Config{Server: cfg, Logger: log, MemoryLimit: memoryLimit})
	if err != nil {
		return err
	}
	if created {
		if err := printFirstStart(cfg, n.URL()); err != nil {
			log.Warn("could not mint the root token", "err", err)
		}
	}

	// 3. Wait for a signal or `garret cluster leave`, then shut down in
	// reverse order (leaving the cluster first); a leave exits with 0.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case <-n.Done():
		log.Info("shutting down: an admin asked this node to leave the cluster")
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}

// applyCluster applies the [cluster] flags. --join replaces the config's
// list (a node given --join never bootstraps unless bootstrap = true).
func (f serveFlags) applyCluster(cfg *serverconfig.Config) error {
	for _, j := range f.join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("--join %q: want host:port of another node's gossip-listen address", j)
		}
	}
	if len(f.join) > 0 {
		cfg.Cluster.Join = f.join
	}
	if f.region != "" {
		cfg.Cluster.Region = f.region
	}
	if f.nodeName != "" {
		cfg.Cluster.NodeName = f.nodeName
	}
	return nil
}
