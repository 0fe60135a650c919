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

func newHookCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "hook", Short: "Add, list and remove webhooks, and see their deliveries"}
	var events []string
	var secret string
	add := &cobra.Command{
		Use:   "add URL --events TYPE[,TYPE...] [--secret S]",
		Short: "Send the fleet's events to URL, signed",
		Long: `Add a webhook. Each event is POSTed to URL once per fleet (by the leader),
as JSON, at least once: a delivery that fails is retried with backoff,
and one in flight when the leader dies is made again by the next leader,
with the same Idempotency-Key header. Each request carries
Sitefleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
made with the secret (see the README for how to check it).

Event types: ` + strings.Join(model.HookEventTypes, ", ") + `.

Without --secret a secret is made and printed once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			h, err := c.AddHook(cmd.Context(), client.HookRequest{URL: args[0], Events: events, Secret: secret})
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), h, func(w *tabwriter.Writer) {
				if secret == "" {
					fmt.Fprintf(w, "%s\n", h.Secret)
					fmt.Fprintf(cmd.ErrOrStderr(), "added %s; the signing secret above is not shown again\n", h.Hook.ID)
					return
				}
				fmt.Fprintf(w, "added %s\n", h.Hook.ID)
			})
		},
	}
	add.Flags().StringSliceVar(&events, "events", nil, "event types to send (required): "+strings.Join(model.HookEventTypes, ","))
	add.Flags().StringVar(&secret, "secret", "", "signing secret, 16 to 256 characters (default: made and printed once)")
	_ = add.MarkFlagRequired("events")
	cf.addOutputFlag(add)

	list := &cobra.Command{
		Use: "list", Short: "List webhooks: ID, URL, events, created", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			l, err := c.ListHooks(cmd.Context())
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tURL\tEVENTS\tCREATED\tCREATOR")
				for _, h := range l.Hooks {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", h.ID, h.URL, strings.Join(h.Events, ","), h.CreatedAt.Format(time.RFC3339), dashIfEmpty(h.CreatedBy))
				}
			})
		},
	}
	cf.addOutputFlag(list)

	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a webhook; deliveries still owed to it are dropped", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if err := c.RemoveHook(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}

	var limit int
	log := &cobra.Command{
		Use: "log [--limit N]", Short: "Show the newest delivery attempts, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			l, err := c.HookDeliveries(cmd.Context(), limit)
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), l, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TIME\tHOOK\tEVENT\tTYPE\tATTEMPT\tRESULT\tSTATUS\tTOOK\tERROR")
				for _, e := range l.Entries {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%.0fms\t%s\n", e.Time.Format(time.RFC3339), e.Hook, e.Event, e.Type,
						e.Attempt, e.Result, e.Status, e.DurationMS, dashIfEmpty(e.Error))
				}
			})
		},
	}
	log.Flags().IntVar(&limit, "limit", 0, "at most this many attempts, the newest (default 100, at most 1000)")
	cf.addOutputFlag(log)

	cmd.AddCommand(add, list, remove, log)
	return cmd
}
