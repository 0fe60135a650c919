package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
)

func newTokenCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}
	var role, expires, label string
	var sites []string
	create := &cobra.Command{
		Use:   "create --role read|deploy|admin [--sites PATTERN]... [--expires 30d] [--label TEXT]",
		Short: "Create an API token and print it once",
		Long: `Create an API token. The token is printed once: the fleet keeps only its
SHA-256 and what is shown by "token list".

Roles: read sees status, metrics, sites, bundles and certificates; deploy
also uploads bundles, deploys and rolls back (with --sites, only to the
sites matching one of the patterns, e.g. "*.example.com"); admin does
everything, tokens and the audit trail included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), client.TokenRequest{Role: model.Role(role), Sites: sites, Expires: expires, Label: label})
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), t, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "%s\n", t.Secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "created %s (role %s%s%s); the token above is not shown again\n", t.ID, t.Role, scopeText(t.Token), expiryText(t.Token))
			})
		},
	}
	create.Flags().StringVar(&role, "role", "", "read, deploy or admin (required)")
	create.Flags().StringSliceVar(&sites, "sites", nil, "deploy tokens: site patterns it may deploy to (repeatable; default all)")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d or 12h (default: never)")
	create.Flags().StringVar(&label, "label", "", "what the token is for, shown by token list")
	_ = create.MarkFlagRequired("role")
	cf.addOutputFlag(create)

	list := &cobra.Command{
		Use: "list", Short: "List tokens: ID, role, scope, creator, created, last used, expiry", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			l, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tROLE\tSITES\tCREATOR\tCREATED\tLAST USED\tEXPIRES\tLABEL")
				for _, t := range l.Tokens {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.RoleOf(), dashIfEmpty(strings.Join(t.Sites, ",")), dashIfEmpty(t.Creator),
						t.CreatedAt.Format(time.RFC3339), timeOrDash(t.LastUsed), timeOrDash(t.ExpiresAt), dashIfEmpty(t.Label))
				}
			})
		},
	}
	cf.addOutputFlag(list)

	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token on every node", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newAuditCmd(cf *clientFlags) *cobra.Command {
	var since time.Duration
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--since 24h] [--limit N]",
		Short: "Show the audit trail: every change made through the API, by whom",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			l, err := c.Audit(cmd.Context(), from, limit)
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TIME\tNODE\tTOKEN\tROLE\tSOURCE\tACTION\tTARGET\tRESULT")
				for _, e := range l.Entries {
					result := fmt.Sprint(e.Status)
					if e.Error != "" {
						result += " " + e.Error
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Node, e.TokenID, e.Role, e.Source, e.Action, dashIfEmpty(e.Target), result)
				}
			})
		},
	}
	cmd.Flags().DurationVar(&since, "since", 0, "only entries from this long ago (default: all kept)")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries, the newest (default 1000)")
	cf.addOutputFlag(cmd)
	return cmd
}

func scopeText(t model.Token) string {
	if len(t.Sites) == 0 {
		return ""
	}
	return ", sites " + strings.Join(t.Sites, ",")
}

func expiryText(t model.Token) string {
	if t.ExpiresAt == nil {
		return ", no expiry"
	}
	return ", expires " + t.ExpiresAt.Format(time.RFC3339)
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
