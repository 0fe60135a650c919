package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/internal/fsutil"
	"github.com/sitefleet/sitefleet/model"
)

func newAppCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Upload, list and remove app bundles"}
	cmd.AddCommand(newAppUploadCmd(cf), newAppListCmd(cf), newAppRmCmd(cf), newKeygenCmd())
	return cmd
}

func newAppUploadCmd(cf *clientFlags) *cobra.Command {
	var app, version, keyFile string
	var quiet, checksum bool
	cmd := &cobra.Command{
		Use:   "upload DIR|ARCHIVE --app NAME [--version V] [--sign KEYFILE] [--checksum]",
		Short: "Upload a built site (a directory, or a .tar.gz, .tar or .zip)",
		Long: `Upload a built site as app@version. A directory is sent by content: its
files are hashed here, and only those the node does not hold yet are sent
(regular files and directories only; a one-file change sends one file).
Like rsync, it hashes again only the files whose size, modification or
change time differ from the last upload of the directory (the digests are
kept in the user's cache directory); --checksum hashes every file.
An archive is sent whole. The node answers once the bundle is held by
bundles.minReplicas live nodes. --version defaults to the current UTC time
(e.g. 20261122T224500Z). With --sign, the upload carries an Ed25519
signature made with the private key in KEYFILE (see app keygen): over the
release (app, version and file list) for a directory, over the archive's
SHA-256 for an archive.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version == "" {
				version = time.Now().UTC().Format("20060102T150405Z")
			}
			if fi, err := os.Stat(args[0]); err == nil && fi.IsDir() {
				c, err := cf.client(cmd)
				if err != nil {
					return err
				}
				var progress io.Writer
				if !quiet {
					progress = cmd.ErrOrStderr()
				}
				res, err := uploadDir(cmd.Context(), c, args[0], app, version, keyFile, checksum, progress)
				if err != nil {
					return err
				}
				return printUpload(cmd.OutOrStdout(), res)
			}
			archive := args[0]
			sum, size, err := deploy.HashFile(archive)
			if err != nil {
				return fmt.Errorf("hash archive: %w", err)
			}
			sig := ""
			if keyFile != "" {
				if sig, err = signWith(keyFile, sum); err != nil {
					return err
				}
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(archive)
			if err != nil {
				return fmt.Errorf("open archive: %w", err)
			}
			defer f.Close()
			var body io.Reader = f
			if !quiet {
				body = newProgress(f, size, cmd.ErrOrStderr())
			}
			res, err := c.UploadBundle(cmd.Context(), app, version, body, sum, sig)
			if !quiet {
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if err != nil {
				return err
			}
			return printUpload(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name (required)")
	cmd.Flags().StringVar(&version, "version", "", "version (default: the current UTC time)")
	cmd.Flags().StringVar(&keyFile, "sign", "", "sign with the Ed25519 private key in this file")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	cmd.Flags().BoolVar(&checksum, "checksum", false, "hash every file of a directory, not only those changed since its last upload")
	_ = cmd.MarkFlagRequired("app")
	return cmd
}

func printUpload(w io.Writer, res client.UploadResult) error {
	verb := "uploaded"
	if !res.Created {
		verb = "already uploaded (same content)"
	}
	_, err := fmt.Fprintf(w, "%s %s: sha256 %s, %d files, %s; held by %s\n", verb, res.Bundle.Ref(),
		res.Bundle.SHA256, res.Bundle.Files, humanBytes(res.Bundle.Unpacked), strings.Join(res.Holders, ", "))
	return err
}

func signWith(keyFile, sum string) (string, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("read signing key: %w", err)
	}
	sig, err := deploy.Sign(strings.TrimSpace(string(b)), sum)
	if err != nil {
		return "", fmt.Errorf("sign bundle with %s: %w", keyFile, err)
	}
	return sig, nil
}

// progress writes an upload progress bar to w as the body is read.
type progress struct {
	r          io.Reader
	w          io.Writer
	total      int64
	done       int64
	lastUpdate time.Time
}

func newProgress(r io.Reader, total int64, w io.Writer) *progress {
	return &progress{r: r, w: w, total: total}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if time.Since(p.lastUpdate) > 100*time.Millisecond || errors.Is(err, io.EOF) {
		p.lastUpdate = time.Now()
		pct := 100.0
		if p.total > 0 {
			pct = float64(p.done) * 100 / float64(p.total)
		}
		bar := strings.Repeat("#", int(pct/5)) + strings.Repeat(".", 20-int(pct/5))
		fmt.Fprintf(p.w, "\ruploading [%s] %5.1f%% %s / %s", bar, pct, humanBytes(p.done), humanBytes(p.total))
	}
	return n, err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newAppListCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [APP]",
		Short: "List uploaded bundles",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			list, err := c.ListBundles(cmd.Context(), app)
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), list, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "APP\tVERSION\tSHA256\tFILES\tSIZE\tSIGNER\tUPLOADED")
				for _, b := range list.Bundles {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.App, b.Version, b.SHA256[:12], b.Files, humanBytes(b.Unpacked),
						dashIfEmpty(b.Signer), b.UploadedAt.Format(time.RFC3339))
				}
			})
		},
	}
	cf.addOutputFlag(cmd)
	return cmd
}

func newAppRmCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm APP@VERSION",
		Short: "Remove a bundle that no site uses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, version, err := splitRef(args[0])
			if err != nil {
				return err
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteBundle(cmd.Context(), app, version); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return err
		},
	}
}

func splitRef(ref string) (string, string, error) {
	app, version, ok := strings.Cut(ref, "@")
	if !ok || app == "" || version == "" {
		return "", "", fmt.Errorf("%q: want APP@VERSION", ref)
	}
	return app, version, nil
}

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out NAME",
		Short: "Make an Ed25519 key pair for signing bundles",
		Long: `Write NAME.key (the private key, mode 0600: keep it in your CI's secrets)
and NAME.pub (the public key). Add the public key to bundles.publicKeys in
every node's configuration; with bundles.requireSignature: true, nodes refuse
bundles not signed by one of those keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, priv, err := deploy.GenerateKey()
			if err != nil {
				return err
			}
			if _, err := os.Stat(out + ".key"); err == nil {
				return fmt.Errorf("%s.key exists; not overwriting it", out)
			}
			if err := fsutil.WriteFileAtomic(out+".key", []byte(priv+"\n"), 0o600); err != nil {
				return err
			}
			if err := fsutil.WriteFileAtomic(out+".pub", []byte(pub+"\n"), 0o644); err != nil {
				return err
			}
			id, _ := deploy.KeyID(pub)
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key and %s.pub (key id %s)\nadd to every node's configuration:\n  bundles:\n    publicKeys: [\"%s\"]\n", out, out, id, pub)
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "sitefleet-signing", "file name prefix")
	return cmd
}

func newDeployCmd(cf *clientFlags) *cobra.Command {
	var wait time.Duration
	var preview, expires string
	cmd := &cobra.Command{
		Use:   "deploy DOMAIN APP@VERSION [--wait 30s] [--preview [NAME] [--expires 7d]]",
		Short: "Make a site serve an uploaded bundle, live or as a preview",
		Long: `Switch a site to app@version on every node. Each node makes the bundle
present first; the old content serves until the switch. With --wait the
command returns once every live node serves it, or fails at the deadline
listing each node's state.

With --preview the live deployment stays as it is: the bundle is served
as a preview at <name>--<site, dots as hyphens>.<previews.domain>, with
the bundle's _redirects and _headers and X-Robots-Tag: noindex. NAME
defaults to one made of the version; deploying to an existing preview
moves it to the new bundle. --expires gives its lifetime (7d, 36h; 0 for
none; default previews.expires). See promote and preview.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, version, err := splitRef(args[1])
			if err != nil {
				return err
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("preview") {
				name := preview
				if name == previewFromVersion {
					name = previewName(version)
				}
				res, err := c.DeployPreview(cmd.Context(), args[0], name, app, version, expires, wait, client.Precondition{})
				if err != nil {
					return err
				}
				p, _ := res.Site.Preview(name)
				return reportDeploy(cmd, fmt.Sprintf("previewing %s on %s as %q at http(s)://%s/%s", args[1], args[0], name, p.Host, expiry(p)), res)
			}
			if cmd.Flags().Changed("expires") {
				return errors.New("--expires is for previews: add --preview")
			}
			res, err := c.Deploy(cmd.Context(), args[0], app, version, wait, client.Precondition{})
			if err != nil {
				return err
			}
			return reportDeploy(cmd, "deployed "+args[1]+" to "+args[0], res)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every live node to serve it")
	cmd.Flags().StringVar(&preview, "preview", "", "serve it as the preview called NAME beside the live deployment (default name: from the version)")
	cmd.Flags().Lookup("preview").NoOptDefVal = previewFromVersion
	cmd.Flags().StringVar(&expires, "expires", "", "with --preview: its lifetime (7d, 36h; 0 for none)")
	return cmd
}

// previewFromVersion is --preview without a name: one is made of the
// version.
const previewFromVersion = "+"

// previewName makes a preview name of a version: lower case, runs of
// other characters as one hyphen, at most model.MaxPreviewName long.
func previewName(version string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(version) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	name := b.String()
	if len(name) > model.MaxPreviewName {
		name = strings.TrimRight(name[:model.MaxPreviewName], "-")
	}
	switch len(name) {
	case 0:
		name = "preview"
	case 2: // "ab--" would look like an IDN label
		name = "v" + name
	}
	return name
}

// expiry says when a preview expires, for a report line.
func expiry(p model.Preview) string {
	if p.ExpiresAt == nil {
		return ""
	}
	return ", until " + expiresText(p)
}

func newPromoteCmd(cf *clientFlags) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "promote DOMAIN NAME [--wait 30s]",
		Short: "Make a site serve the bundle of one of its previews",
		Long: `Deploy the bundle of the site's preview NAME live, as "deploy" would:
the current deployment moves to the history (rollback undoes it). The
preview stays until it is removed or expires.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.PromotePreview(cmd.Context(), args[0], args[1], wait, client.Precondition{})
			if err != nil {
				return err
			}
			d := res.Site.Deployment
			return reportDeploy(cmd, fmt.Sprintf("promoted preview %q: %s serves %s@%s", args[1], args[0], d.App, d.Version), res)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every live node to serve it")
	return cmd
}

func newPreviewCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "preview", Short: "List and remove deploy previews (deploy --preview makes them)"}
	list := &cobra.Command{
		Use: "list DOMAIN", Short: "List a site's previews", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, s, err := fetchSite(cmd, cf, args[0])
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), s.Previews, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tHOST\tBUNDLE\tDEPLOYED\tEXPIRES")
				for _, p := range s.Previews {
					fmt.Fprintf(w, "%s\t%s\t%s@%s\t%s\t%s\n", p.Name, p.Host, p.Deployment.App, p.Deployment.Version,
						p.Deployment.DeployedAt.Format(time.RFC3339), expiresText(p))
				}
			})
		},
	}
	cf.addOutputFlag(list)
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use: "remove DOMAIN NAME", Aliases: []string{"rm"}, Short: "Remove a preview (the live deployment is untouched)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.RemovePreview(cmd.Context(), args[0], args[1], client.Precondition{})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed preview %q of %s (revision %d)\n", args[1], args[0], res.Site.Revision)
			return err
		},
	})
	return cmd
}

// expiresText is when a preview expires, or "never".
func expiresText(p model.Preview) string {
	if p.ExpiresAt == nil {
		return "never"
	}
	return p.ExpiresAt.Format(time.RFC3339)
}

func newRollbackCmd(cf *clientFlags) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "rollback DOMAIN [--wait 30s]",
		Short: "Switch a site back to its previous deployment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.Rollback(cmd.Context(), args[0], wait, client.Precondition{})
			if err != nil {
				return err
			}
			d := res.Site.Deployment
			return reportDeploy(cmd, fmt.Sprintf("rolled %s back to %s@%s", args[0], d.App, d.Version), res)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every live node to serve it")
	return cmd
}

func reportDeploy(cmd *cobra.Command, what string, res client.DeployResult) error {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s (revision %d)\n", what, res.Site.Revision)
	if res.Wait == nil {
		return nil
	}
	for _, n := range res.Wait.Nodes {
		state := "serving"
		if !n.Serving {
			state = "NOT YET: " + dashIfEmpty(n.Error)
		}
		fmt.Fprintf(w, "  %s\t%s\n", n.Node, state)
	}
	if !res.Wait.Done {
		return errors.New("not every live node serves it yet (see above)")
	}
	return nil
}
