package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitefleet/sitefleet/api/client"
)

func newCertCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Import, list, show and remove TLS certificates"}
	var chain, key string
	var domains []string
	imp := &cobra.Command{
		Use:   "import ID --chain FILE --key FILE [--domain NAME]...",
		Short: "Import a certificate chain (leaf first) and its private key",
		Long: `Import a certificate. The chain must parse, be in order (leaf first), not be
expired, and match the key (ECDSA or RSA of 2048 bits or more); with
--domain, it must also cover those names. The key is sealed with the
cluster key before it is stored and is never shown again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			chainPEM, err := os.ReadFile(chain)
			if err != nil {
				return fmt.Errorf("read chain: %w", err)
			}
			keyPEM, err := os.ReadFile(key)
			if err != nil {
				return fmt.Errorf("read key: %w", err)
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			info, err := c.ImportCertificate(cmd.Context(), client.CertImport{ID: args[0], Chain: string(chainPEM), Key: string(keyPEM), Domains: domains})
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), info, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "imported %s: %s, valid until %s\n", info.ID, strings.Join(info.Domains, ", "), info.NotAfter.Format(time.RFC3339))
			})
		},
	}
	imp.Flags().StringVar(&chain, "chain", "", "PEM file of the chain, leaf first (required)")
	imp.Flags().StringVar(&key, "key", "", "PEM file of the private key (required)")
	imp.Flags().StringSliceVar(&domains, "domain", nil, "a name the certificate must cover (repeatable)")
	_ = imp.MarkFlagRequired("chain")
	_ = imp.MarkFlagRequired("key")
	cf.addOutputFlag(imp)

	list := &cobra.Command{
		Use: "list", Short: "List certificates: type, names, expiry, issuer, status", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			l, err := c.ListCertificates(cmd.Context())
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tTYPE\tDOMAINS\tEXPIRES\tSTATUS\tISSUER")
				for _, i := range l.Certificates {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Type, strings.Join(i.Domains, ","), i.NotAfter.Format("2006-01-02"), i.Status, i.Issuer)
				}
			})
		},
	}
	cf.addOutputFlag(list)
	get := &cobra.Command{
		Use: "get ID", Short: "Show a certificate and its chain (never its key)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			i, err := c.GetCertificate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), i, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "id:\t%s\ntype:\t%s\ndomains:\t%s\nvalid:\t%s .. %s (%s)\nissuer:\t%s\nserial:\t%s\n%s",
					i.ID, i.Type, strings.Join(i.Domains, ", "), i.NotBefore.Format(time.RFC3339), i.NotAfter.Format(time.RFC3339), i.Status, i.Issuer, i.Serial, i.ChainPEM)
			})
		},
	}
	cf.addOutputFlag(get)
	rm := &cobra.Command{
		Use: "rm ID", Short: "Remove a certificate and its sealed key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteCertificate(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed certificate %s\n", args[0])
			return err
		},
	}
	cmd.AddCommand(imp, list, get, rm)
	return cmd
}
