// Package cli holds the sitefleet commands that drive a fleet through
// its API (sites, state, apps, deploys, certificates, status).
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/config"
)

// NewRoot returns the sitefleet root command, with the --config flag and
// the commands that drive a fleet through its API (and their --server,
// --token and -o flags); the caller adds the node's own commands.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "sitefleet",
		Short:         "An active-active static-site server: etcd-backed nodes that drive nginx",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("config", os.Getenv("SITEFLEET_CONFIG"), "YAML configuration file (env SITEFLEET_CONFIG)")
	cf := &clientFlags{}
	cf.register(root)
	root.AddCommand(newSiteCmd(cf), newStateCmd(cf), newStatusCmd(cf), newClusterCmd(cf),
		newAppCmd(cf), newDeployCmd(cf), newRollbackCmd(cf), newPromoteCmd(cf), newPreviewCmd(cf), newCertCmd(cf), newTokenCmd(cf), newAuditCmd(cf), newHookCmd(cf), newReadyCmd(cf))
	return root
}

// clientFlags are the flags of every command that talks to a node's API.
type clientFlags struct {
	server string
	token  string
	// TLS to the API: a CA to trust, and a client certificate.
	caCert, cert, key string
	output            string
}

func (f *clientFlags) register(root *cobra.Command) {
	p := root.PersistentFlags()
	p.StringVar(&f.server, "server", os.Getenv("SITEFLEET_SERVER"), "API URL of any node (env SITEFLEET_SERVER; default: the local node's api.listen)")
	p.StringVar(&f.token, "token", os.Getenv("SITEFLEET_TOKEN"), "API token (env SITEFLEET_TOKEN; default: the local node's <dataDir>/admin.token)")
	p.StringVar(&f.caCert, "cacert", os.Getenv("SITEFLEET_CACERT"), "PEM file of a CA to trust for an https API, besides the system's (env SITEFLEET_CACERT; default: the local node's api.tls.ca)")
	p.StringVar(&f.cert, "cert", os.Getenv("SITEFLEET_CERT"), "PEM client certificate, for an API that requires one (env SITEFLEET_CERT)")
	p.StringVar(&f.key, "key", os.Getenv("SITEFLEET_KEY"), "PEM key of --cert (env SITEFLEET_KEY)")
}

// client returns an API client for the node the flags name, defaulting to
// the local node as its configuration describes it.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, error) {
	return f.newClient(cmd, true)
}

// readyClient is client for the calls that need no token.
func (f *clientFlags) readyClient(cmd *cobra.Command) (*client.Client, error) {
	return f.newClient(cmd, false)
}

func (f *clientFlags) newClient(cmd *cobra.Command, needToken bool) (*client.Client, error) {
	server, token := f.server, f.token
	tlsFiles := config.APITLSConfig{CA: f.caCert, Certificate: f.cert, Key: f.key}
	if server == "" || token == "" && needToken {
		path, _ := cmd.Flags().GetString("config")
		cfg, err := config.Load(viper.New(), path)
		if err != nil {
			return nil, fmt.Errorf("find the local node (set --server and --token to talk to another): %w", err)
		}
		if server == "" {
			server = cfg.LocalAPI()
			if tlsFiles.CA == "" {
				tlsFiles.CA = cfg.API.TLS.CA
			}
			if tlsFiles.Certificate == "" && cfg.API.TLS.ClientCA != "" {
				tlsFiles.Certificate, tlsFiles.Key = cfg.API.TLS.Certificate, cfg.API.TLS.Key
			}
		}
		if token == "" && needToken {
			b, err := os.ReadFile(cfg.TokenPath())
			if err != nil {
				return nil, fmt.Errorf("no --token given and the local admin token is unreadable: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	if (tlsFiles.Certificate == "") != (tlsFiles.Key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	tlsCfg, err := tlsFiles.ClientTLS()
	if err != nil {
		return nil, err
	}
	return client.New(server, token).WithTLS(tlsCfg), nil
}

// addOutputFlag adds -o table|json.
func (f *clientFlags) addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

// print writes v as JSON with -o json, or calls table otherwise.
func (f *clientFlags) print(w io.Writer, v any, table func(*tabwriter.Writer)) error {
	switch f.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	return errors.New(`--output must be "table" or "json"`)
}

// readAll reads r up to 64 MiB.
func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<20+1))
	if err == nil && len(b) > 64<<20 {
		return nil, errors.New("input is larger than 64 MiB")
	}
	return b, err
}
