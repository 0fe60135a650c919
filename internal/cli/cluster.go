package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitefleet/sitefleet/api/client"
)

// errUnhealthy makes `cluster status` exit non-zero after printing.
type errUnhealthy struct{ problems []string }

func (e *errUnhealthy) Error() string {
	return fmt.Sprintf("%d problem(s) past the grace period: %s", len(e.problems), strings.Join(e.problems, "; "))
}

func newClusterCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Show the fleet"}
	var grace time.Duration
	status := &cobra.Command{
		Use:   "status",
		Short: "List every node: leader, applied revision and drift, last seen, health",
		Long: `List every node of the fleet as etcd shows it.

Exits non-zero when a live node has served a state older than the desired
one, or been unhealthy, for longer than --grace, so that scripts and
monitors can run it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			cs, err := c.Cluster(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			if err := cf.print(cmd.OutOrStdout(), cs, func(w *tabwriter.Writer) { clusterTable(w, cs, now) }); err != nil {
				return err
			}
			if p := clusterProblems(cs, now, grace); len(p) > 0 {
				return &errUnhealthy{problems: p}
			}
			return nil
		},
	}
	status.Flags().DurationVar(&grace, "grace", 30*time.Second, "how long a live node may be drifted or unhealthy before the command fails")
	cf.addOutputFlag(status)
	cmd.AddCommand(status)
	return cmd
}

func clusterTable(w *tabwriter.Writer, cs client.ClusterStatus, now time.Time) {
	fmt.Fprintf(w, "desired revision %d, leader %s\n\n", cs.StateRevision, dashIfEmpty(cs.Leader))
	fmt.Fprintln(w, "NODE\tLEADER\tAPPLIED\tDRIFT\tHEALTH\tLAST SEEN\tAPI\tVERSION")
	for _, n := range cs.Nodes {
		leader := ""
		if n.Leader {
			leader = "*"
		}
		drift := "-"
		if n.Drifted {
			drift = fmt.Sprintf("behind (%d)", cs.StateRevision-n.AppliedRevision)
		}
		health := "healthy"
		switch {
		case !n.Live:
			health = "gone"
		case n.Stale:
			health = "stale"
		case !n.Healthy:
			health = "unhealthy"
		}
		if n.LastError != "" {
			health += ": " + n.LastError
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s ago\t%s\t%s\n", n.Name, leader, n.AppliedRevision, drift, health,
			now.Sub(n.LastSeen).Round(time.Second), dashIfEmpty(n.APIAddress), n.Version)
	}
	siteErrorsTable(w, cs)
}

// maxReasonShown cuts a site's error in the table; -o json has all of it.
const maxReasonShown = 160

// siteErrorsTable lists, per live node, the sites it serves in their last
// good state and why (nginx's message when nginx refused the site).
func siteErrorsTable(w *tabwriter.Writer, cs client.ClusterStatus) {
	header := false
	for _, n := range cs.Nodes {
		if !n.Live {
			continue
		}
		for _, site := range slices.Sorted(maps.Keys(n.SiteErrors)) {
			if !header {
				fmt.Fprintln(w, "\nNODE\tSITE\tSERVED AS LAST GOOD, BECAUSE")
				header = true
			}
			reason := strings.Join(strings.Fields(n.SiteErrors[site]), " ")
			if len(reason) > maxReasonShown {
				reason = strings.ToValidUTF8(reason[:maxReasonShown], "") + "..."
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", n.Name, site, reason)
		}
	}
}

// clusterProblems lists the live nodes drifted or unhealthy for longer
// than grace.
func clusterProblems(cs client.ClusterStatus, now time.Time, grace time.Duration) []string {
	var out []string
	for _, n := range cs.Nodes {
		if !n.Live {
			continue
		}
		if n.Drifted && n.DriftedSince != nil && now.Sub(*n.DriftedSince) > grace {
			out = append(out, fmt.Sprintf("%s serves revision %d, %d behind, for %s", n.Name, n.AppliedRevision, cs.StateRevision-n.AppliedRevision, now.Sub(*n.DriftedSince).Round(time.Second)))
		}
		if !n.Healthy && n.UnhealthySince != nil && now.Sub(*n.UnhealthySince) > grace {
			out = append(out, fmt.Sprintf("%s unhealthy for %s", n.Name, now.Sub(*n.UnhealthySince).Round(time.Second)))
		}
	}
	return out
}
