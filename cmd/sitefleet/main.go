// Command sitefleet runs a sitefleet node and drives a fleet through its API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/sitefleet/sitefleet/internal/cli"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/daemon"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// drain is closed at the first SIGTERM or SIGINT when a node runs
// (draining it); the context of every command ends at the next one, or at
// the first when no node runs.
var (
	drain    = make(chan struct{})
	draining atomic.Bool
	nodeRuns atomic.Bool
)

func main() {
	daemon.Version = version
	ctx, stop := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for range sigs {
			if nodeRuns.Load() && !draining.Swap(true) {
				close(drain)
				continue
			}
			stop()
			return
		}
	}()
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	signal.Stop(sigs)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := cli.NewRoot(stdout, stderr)
	root.AddCommand(newNodeCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "sitefleet", version)
			return err
		},
	}
}

func newNodeCmd() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node: embedded or external etcd, nginx, the reconciler and the API",
		Long: `Run a node until SIGINT or SIGTERM. The first signal drains the node: its
readiness checks fail while it keeps serving for shutdown.drain (15s by
default), then it stops; a second signal stops it at once.

With no configuration the node runs on its own: a single-member etcd embedded
in the data directory, nginx on :8080, the API on 127.0.0.1:7070, and an admin
token generated at first start in <dataDir>/admin.token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := config.Load(v, path)
			if err != nil {
				return err
			}
			if err := resolveNodeName(&cfg); err != nil {
				return err
			}
			log, err := newLogger(cfg.Log, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			nodeRuns.Store(true)
			return daemon.RunDraining(cmd.Context(), drain, cfg, log)
		},
	}
	f := cmd.Flags()
	f.String("data-dir", "", "data directory (dataDir)")
	f.String("node-name", "", "node name, unique in the fleet (nodeName)")
	f.String("api-listen", "", "management API host:port (api.listen)")
	f.String("http-listen", "", "nginx HTTP host:port (web.httpListen)")
	for flag, key := range map[string]string{"data-dir": "dataDir", "node-name": "nodeName", "api-listen": "api.listen", "http-listen": "web.httpListen"} {
		_ = v.BindPFlag(key, f.Lookup(flag))
	}
	return cmd
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// resolveNodeName defaults the node name to the host name and checks it.
func resolveNodeName(cfg *config.Config) error {
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("nodeName is not set and the host name is unknown: %w", err)
		}
		cfg.NodeName, _, _ = strings.Cut(h, ".")
	}
	if !nodeNameRE.MatchString(cfg.NodeName) {
		return fmt.Errorf("nodeName %q: use 1 to 63 letters, digits, dots, dashes and underscores", cfg.NodeName)
	}
	return nil
}

func newLogger(c config.LogConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level %q: want debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errors.New(`log.format must be "text" or "json"`)
}
