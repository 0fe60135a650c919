package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/fsutil"
	"github.com/sitefleet/sitefleet/state"
)

func newSiteCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "Add, list, show and remove sites"}
	cmd.AddCommand(newSiteAddCmd(cf), newSiteSetCmd(cf), newSiteListCmd(cf), newSiteGetCmd(cf), newSiteRmCmd(cf), newSiteProtectCmd(cf), newSiteUnprotectCmd(cf))
	return cmd
}

func newSiteAddCmd(cf *clientFlags) *cobra.Command {
	var aliases []string
	var redirect, redirectHTML bool
	var tlsFlags siteTLSFlags
	cmd := &cobra.Command{
		Use:   "add DOMAIN",
		Short: "Add a site (fails if it exists)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			site := state.Site{Domain: args[0], Aliases: aliases, Options: state.SiteOptions{RedirectAliases: redirect, RedirectHTML: redirectHTML}}
			if err := tlsFlags.apply(cmd, &site); err != nil {
				return err
			}
			got, err := c.PutSite(cmd.Context(), site, client.Precondition{Create: true})
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), got, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "added site %s (revision %d)\n", got.Domain, got.Revision)
			})
		},
	}
	cmd.Flags().StringSliceVar(&aliases, "alias", nil, "alias host name (repeatable or comma-separated)")
	cmd.Flags().BoolVar(&redirect, "redirect-aliases", false, "answer aliases with a 301 to the domain")
	cmd.Flags().BoolVar(&redirectHTML, "redirect-html", false, "answer /page.html with a 301 to /page")
	tlsFlags.register(cmd)
	cf.addOutputFlag(cmd)
	return cmd
}

func newSiteSetCmd(cf *clientFlags) *cobra.Command {
	var aliases, keepAssets []string
	var redirect, redirectHTML bool
	var keepWindow time.Duration
	var tlsFlags siteTLSFlags
	cmd := &cobra.Command{
		Use:   "set DOMAIN [--alias A]... [--redirect-aliases=BOOL] [--redirect-html=BOOL] [--keep-assets P,...] [--keep-assets-window D] [--tls MODE] [--https-redirect=BOOL] [--hsts-max-age D]",
		Short: "Change a site's aliases or options (flags not given keep their value)",
		Long: `Change a site: read it, apply the flags given, and write it back guarded by
the revision read, so a concurrent change is never overwritten (the command
fails with the API's 412 instead; run it again). --alias replaces the whole
alias list; --alias "" removes every alias.

--keep-assets /assets/*,/_next/static/* keeps serving, under those paths
only, the files of earlier deployments that the current one lacks, for
--keep-assets-window (default 24h) after each deploy: a page loaded before
a deploy still finds its hashed scripts and styles. --keep-assets "" turns
it off.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return updateSite(cmd, cf, args[0], "updated", func(site *state.Site) error {
				f := cmd.Flags()
				if f.Changed("alias") {
					site.Aliases = nil
					for _, a := range aliases {
						if a != "" {
							site.Aliases = append(site.Aliases, a)
						}
					}
				}
				if f.Changed("redirect-aliases") {
					site.Options.RedirectAliases = redirect
				}
				if f.Changed("redirect-html") {
					site.Options.RedirectHTML = redirectHTML
				}
				if err := applyKeepAssets(f.Changed("keep-assets"), f.Changed("keep-assets-window"), keepAssets, keepWindow, &site.Options); err != nil {
					return err
				}
				return tlsFlags.apply(cmd, site)
			})
		},
	}
	cmd.Flags().StringSliceVar(&aliases, "alias", nil, "the site's aliases (replaces the list; repeatable or comma-separated)")
	cmd.Flags().BoolVar(&redirect, "redirect-aliases", false, "answer aliases with a 301 to the domain")
	cmd.Flags().BoolVar(&redirectHTML, "redirect-html", false, "answer /page.html with a 301 to /page")
	cmd.Flags().StringSliceVar(&keepAssets, "keep-assets", nil, "path patterns (/dir/* or /file) under which earlier deployments' files stay reachable; \"\" for none")
	cmd.Flags().DurationVar(&keepWindow, "keep-assets-window", 24*time.Hour, "how long after a deploy the earlier deployment's files stay reachable")
	tlsFlags.register(cmd)
	cf.addOutputFlag(cmd)
	return cmd
}

// applyKeepAssets applies the --keep-assets flags given to opts.
func applyKeepAssets(pathsSet, windowSet bool, paths []string, window time.Duration, opts *state.SiteOptions) error {
	if pathsSet {
		var keep []string
		for _, p := range paths {
			if p != "" {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			opts.KeepAssets = nil
			return nil
		}
		cur := int64(window.Seconds())
		if opts.KeepAssets != nil && !windowSet {
			cur = opts.KeepAssets.WindowSeconds
		}
		opts.KeepAssets = &state.KeepAssets{Paths: keep, WindowSeconds: cur}
		return nil
	}
	if windowSet {
		if opts.KeepAssets == nil {
			return fmt.Errorf("--keep-assets-window needs --keep-assets (the site keeps no old assets)")
		}
		opts.KeepAssets.WindowSeconds = int64(window.Seconds())
	}
	return nil
}

func newSiteListCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sites",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListSites(cmd.Context())
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), list, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "DOMAIN\tALIASES\tREDIRECT ALIASES\tTLS\tREVISION")
				for _, s := range list.Sites {
					fmt.Fprintf(w, "%s\t%s\t%t\t%s\t%d\n", s.Domain, dashIfEmpty(strings.Join(s.Aliases, ",")), s.Options.RedirectAliases, s.ModeOf(), s.Revision)
				}
			})
		},
	}
	cf.addOutputFlag(cmd)
	return cmd
}

func newSiteGetCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get DOMAIN",
		Short: "Show a site",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, s, err := fetchSite(cmd, cf, args[0])
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), s, func(w *tabwriter.Writer) {
				keep := "-"
				if k := s.Options.KeepAssets; k != nil {
					keep = fmt.Sprintf("%s for %s", strings.Join(k.Paths, ", "), time.Duration(k.WindowSeconds)*time.Second)
				}
				deployed := "-"
				if d := s.Deployment; d != nil {
					deployed = fmt.Sprintf("%s@%s (%s)", d.App, d.Version, d.DeployedAt.Format(time.RFC3339))
				}
				fmt.Fprintf(w, "domain:\t%s\naliases:\t%s\nredirect aliases:\t%t\nkeep old assets:\t%s\ntls:\t%s\nprotection:\t%s\ndeployment:\t%s\nrevision:\t%d\n",
					s.Domain, dashIfEmpty(strings.Join(s.Aliases, ", ")), s.Options.RedirectAliases, keep, describeTLS(s.TLS), describeProtection(s.Options.Protection), deployed, s.Revision)
				if len(s.Previews) == 0 {
					fmt.Fprintf(w, "previews:\t-\n")
				}
				for i, p := range s.Previews {
					label := ""
					if i == 0 {
						label = "previews:"
					}
					fmt.Fprintf(w, "%s\t%s: %s@%s at %s, expires %s\n", label, p.Name, p.Deployment.App, p.Deployment.Version, p.Host, expiresText(p))
				}
			})
		},
	}
	cf.addOutputFlag(cmd)
	return cmd
}

func newSiteRmCmd(cf *clientFlags) *cobra.Command {
	var ifMatch int64
	cmd := &cobra.Command{
		Use:   "rm DOMAIN",
		Short: "Remove a site",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			rev, err := c.DeleteSite(cmd.Context(), args[0], client.Precondition{IfMatch: ifMatch})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed site %s (revision %d)\n", args[0], rev)
			return err
		},
	}
	cmd.Flags().Int64Var(&ifMatch, "if-revision", 0, "remove only if the site is still at this revision")
	return cmd
}

func newStateCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "state", Short: "Export or import the whole state"}
	var out string
	get := &cobra.Command{
		Use:   "get",
		Short: "Export the whole state as JSON (to stdout or -o FILE)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			doc, err := c.GetState(cmd.Context())
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return fmt.Errorf("encode state: %w", err)
			}
			b = append(b, '\n')
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return fsutil.WriteFileAtomic(out, b, 0o600)
		},
	}
	get.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	var file string
	var dryRun bool
	set := &cobra.Command{
		Use:   "set -f FILE",
		Short: "Replace the whole state with a document from `state get` (sites not in it are removed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := readDocument(cmd, file)
			if err != nil {
				return err
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.PutState(cmd.Context(), doc, dryRun)
			if err != nil {
				return err
			}
			return printChanges(cmd, res)
		},
	}
	set.Flags().StringVarP(&file, "file", "f", "", "state document (JSON); - for stdin")
	set.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change and change nothing")
	_ = set.MarkFlagRequired("file")
	cmd.AddCommand(get, set)
	return cmd
}

func readDocument(cmd *cobra.Command, file string) (state.Document, error) {
	var doc state.Document
	var b []byte
	var err error
	if file == "-" {
		b, err = readAll(cmd.InOrStdin())
	} else {
		b, err = readFile(file)
	}
	if err != nil {
		return doc, fmt.Errorf("read state document: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return doc, fmt.Errorf("state document %s: %w", file, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return state.Document{}, fmt.Errorf("state document %s: unexpected data after the JSON document", file)
	}
	return doc, nil
}

// readFile reads a file with readAll's size cap.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

func printChanges(cmd *cobra.Command, res state.ImportResult) error {
	w := cmd.OutOrStdout()
	verb := "applied"
	if res.DryRun {
		verb = "would apply (dry run, nothing written)"
	}
	if len(res.Changes) == 0 {
		_, err := fmt.Fprintf(w, "no changes (revision %d)\n", res.Revision)
		return err
	}
	for _, c := range res.Changes {
		fmt.Fprintf(w, "%-7s %s %s\n", c.Action, c.Kind, c.Name)
	}
	_, err := fmt.Fprintf(w, "%s %d change(s); revision %d\n", verb, len(res.Changes), res.Revision)
	return err
}

func newStatusCmd(cf *clientFlags) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's status: applied and desired revision, etcd, nginx, errors",
		Long: `Show the node's status. With --dry-run, show instead what the node would
change to converge on the desired state (sites to add, update, remove),
changing nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if dryRun {
				p, err := c.Preview(cmd.Context())
				if err != nil {
					return err
				}
				return cf.print(cmd.OutOrStdout(), p, func(w *tabwriter.Writer) { previewTable(w, p) })
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), st, func(w *tabwriter.Writer) { statusTable(w, st) })
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what the node would change to converge, and change nothing")
	cf.addOutputFlag(cmd)
	return cmd
}

func previewTable(w *tabwriter.Writer, p client.Preview) {
	fmt.Fprintf(w, "node %s serves revision %d; desired revision %d\n", p.Node, p.AppliedRevision, p.DesiredRevision)
	if p.PendingImport {
		fmt.Fprintln(w, "an import is in progress: the node holds its state until it completes")
	}
	if len(p.Changes) == 0 {
		fmt.Fprintln(w, "nothing to change")
		return
	}
	for _, c := range p.Changes {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Action, c.Kind, c.Name)
	}
}

func statusTable(w *tabwriter.Writer, st client.NodeStatus) {
	fmt.Fprintf(w, "node:\t%s (%s)%s\n", st.Node, st.Version, map[bool]string{true: ", leader", false: ""}[st.Leader])
	if st.RegistryError != "" {
		fmt.Fprintf(w, "registry:\t%s\n", st.RegistryError)
	}
	fmt.Fprintf(w, "ready:\t%t\n", st.Ready)
	fmt.Fprintf(w, "applied revision:\t%d%s\n", st.AppliedRevision, since(st.AppliedAt))
	fmt.Fprintf(w, "desired revision:\t%d\n", st.DesiredRevision)
	etcd := "reachable"
	if !st.Etcd.Reachable {
		etcd = "UNREACHABLE" + since(st.StaleSince)
	}
	fmt.Fprintf(w, "etcd:\t%s\n", etcd)
	if st.Stale {
		fmt.Fprintf(w, "state:\tSTALE (serving the last applied state%s)\n", map[bool]string{true: ", from the local cache", false: ""}[st.FromCache])
	}
	nginx := "stopped"
	if st.Nginx.Running {
		nginx = fmt.Sprintf("running (pid %d, config %s, %d restarts)", st.Nginx.PID, st.Nginx.Generation, st.Nginx.Restarts)
	}
	fmt.Fprintf(w, "nginx:\t%s\n", nginx)
	fmt.Fprintf(w, "sites:\t%d\n", st.Sites)
	if st.PendingImport {
		fmt.Fprintln(w, "import:\tAN IMPORT IS IN PROGRESS OR INCOMPLETE (run state set again to finish it)")
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "last error:\t%s%s\n", st.LastError, since(st.LastErrorAt))
	}
	if st.Nginx.LastError != "" {
		fmt.Fprintf(w, "nginx error:\t%s\n", st.Nginx.LastError)
	}
	for d, e := range st.SiteErrors {
		fmt.Fprintf(w, "site %s:\t%s\n", d, e)
	}
}

func since(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf(" (since %s, %s ago)", t.Format(time.RFC3339), time.Since(*t).Round(time.Second))
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newReadyCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ready",
		Short: "Exit 0 if the node is ready for traffic, 1 (with the reason) if not",
		Long: `Ask the node's /readyz whether it is ready for traffic: it is once nginx
serves its state, and not while it drains before stopping. For container
health checks and scripts; it needs no token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.readyClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.Ready(cmd.Context())
			if err != nil {
				return err
			}
			if !r.Ready {
				return fmt.Errorf("not ready: %s", r.Reason)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ready (revision %d%s)\n", r.AppliedRevision, map[bool]string{true: ", stale", false: ""}[r.Stale])
			return nil
		},
	}
}
