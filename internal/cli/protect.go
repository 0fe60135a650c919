package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
)

// passwordCost is the bcrypt cost the CLI hashes passwords with.
const passwordCost = 10

func newSiteProtectCmd(cf *clientFlags) *cobra.Command {
	var users, hashes, paths []string
	var usersFile string
	var previewsOnly bool
	cmd := &cobra.Command{
		Use:   "protect DOMAIN (--user NAME:PASSWORD | --user-hash NAME:HASH | --users-file FILE)... [--path /dir/*]... [--previews-only]",
		Short: "Ask for a login (HTTP basic authentication) on a site, or parts of it",
		Long: `Protect a site with HTTP basic authentication. The users given replace
the site's users; passwords are hashed with bcrypt here, and only the hash
is sent and stored. --user NAME without a password reads it from standard
input (a line per such user), which keeps it out of shell history. --users-file reads an htpasswd file of bcrypt hashes
("htpasswd -B"). Every hash of a site must have one cost (8 to 12).

--path limits the protection to path patterns (/dir/* or one exact path);
without it every path asks for a login. The site's previews are protected
too; --previews-only protects the previews (every path) and leaves the
live site open. A visitor without the right login gets 401 with a
challenge. Changing users or paths reloads no web server; turning
protection on or off does. See also "site unprotect".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []state.BasicUser
			in := bufio.NewReader(cmd.InOrStdin())
			for _, u := range users {
				name, pass, ok := strings.Cut(u, ":")
				if !ok {
					// The password from standard input, one line per
					// such user: nothing in argv or shell history.
					fmt.Fprintf(cmd.ErrOrStderr(), "password for %s: ", name)
					line, err := in.ReadString('\n')
					if err != nil && line == "" {
						return fmt.Errorf("read the password of %s from standard input: %w", name, err)
					}
					pass = strings.TrimRight(line, "\r\n")
				}
				if pass == "" {
					return fmt.Errorf("--user %q: the password is empty", name)
				}
				h, err := bcrypt.GenerateFromPassword([]byte(pass), passwordCost)
				if err != nil {
					return fmt.Errorf("hash the password of %s: %w", name, err)
				}
				list = append(list, state.BasicUser{Name: name, Hash: string(h)})
			}
			for _, u := range hashes {
				name, hash, ok := strings.Cut(u, ":")
				if !ok {
					return fmt.Errorf("--user-hash %q: give NAME:HASH", u)
				}
				list = append(list, state.BasicUser{Name: name, Hash: hash})
			}
			if usersFile != "" {
				fromFile, err := readHtpasswd(usersFile)
				if err != nil {
					return err
				}
				list = append(list, fromFile...)
			}
			if len(list) == 0 {
				return fmt.Errorf("give at least one user: --user, --user-hash or --users-file")
			}
			return updateSite(cmd, cf, args[0], "protected", func(s *state.Site) error {
				s.Options.Protection = &state.Protection{Users: list, Paths: paths, PreviewsOnly: previewsOnly}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&users, "user", nil, "a user, NAME:PASSWORD or NAME to read the password from standard input (hashed before it is sent; repeatable)")
	cmd.Flags().StringArrayVar(&hashes, "user-hash", nil, "a user and bcrypt hash, NAME:HASH (repeatable)")
	cmd.Flags().StringVar(&usersFile, "users-file", "", "an htpasswd file of bcrypt hashes")
	cmd.Flags().StringSliceVar(&paths, "path", nil, "protect only these path patterns (/dir/* or /file; repeatable)")
	cmd.Flags().BoolVar(&previewsOnly, "previews-only", false, "protect the site's previews only")
	cf.addOutputFlag(cmd)
	return cmd
}

func newSiteUnprotectCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unprotect DOMAIN",
		Short: "Stop asking for a login on a site",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return updateSite(cmd, cf, args[0], "unprotected", func(s *state.Site) error {
				s.Options.Protection = nil
				return nil
			})
		},
	}
	cf.addOutputFlag(cmd)
	return cmd
}

// updateSite reads a site, changes it and writes it back guarded by the
// revision read.
func updateSite(cmd *cobra.Command, cf *clientFlags, domain, what string, change func(*state.Site) error) error {
	c, site, err := fetchSite(cmd, cf, domain)
	if err != nil {
		return err
	}
	if err := change(&site); err != nil {
		return err
	}
	got, err := c.PutSite(cmd.Context(), site, client.Precondition{IfMatch: site.Revision})
	if err != nil {
		return err
	}
	return cf.print(cmd.OutOrStdout(), got, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "%s site %s (revision %d)\n", what, got.Domain, got.Revision)
	})
}

// fetchSite reads a site through the client the flags give.
func fetchSite(cmd *cobra.Command, cf *clientFlags, domain string) (*client.Client, state.Site, error) {
	c, err := cf.client(cmd)
	if err != nil {
		return nil, state.Site{}, err
	}
	site, err := c.GetSite(cmd.Context(), domain)
	return c, site, err
}

// readHtpasswd reads NAME:HASH lines, skipping blank lines and comments.
func readHtpasswd(path string) ([]state.BasicUser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	var out []state.BasicUser
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not NAME:HASH", path, n)
		}
		out = append(out, state.BasicUser{Name: name, Hash: hash})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	return out, nil
}

// describeProtection is a site's protection for "site get".
func describeProtection(p *state.Protection) string {
	if p == nil {
		return "-"
	}
	names := make([]string, len(p.Users))
	for i, u := range p.Users {
		names[i] = u.Name
	}
	where := "every path"
	switch {
	case p.PreviewsOnly:
		where = "previews only"
	case len(p.Paths) > 0:
		where = strings.Join(p.Paths, ", ")
	}
	return fmt.Sprintf("basic auth on %s, users %s", where, strings.Join(names, ", "))
}
