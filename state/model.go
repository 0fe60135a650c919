// Package state holds sitefleet's desired-state model, its validation, and the
// etcd-backed Store that reads and writes it.
//
// Everything a user can put into the state is validated here against allowlists
// before it is written: no value that reaches an nginx file can end a directive
// or open a block, because values that do not fit are rejected, never escaped.
package state

import (
	"cmp"
	"slices"
	"time"
)

// Site is one site served by every node: a primary domain, optional aliases
// and options, its TLS configuration and its deployment.
type Site struct {
	// Domain is the primary host name: lower-case, RFC 1123, IDNs as punycode.
	Domain string `json:"domain"`
	// Aliases are further host names that answer for the site.
	Aliases []string `json:"aliases,omitempty"`
	// Options change how the site is served.
	Options SiteOptions `json:"options"`
	// TLS is the site's HTTPS configuration; nil serves HTTP only.
	TLS *SiteTLS `json:"tls,omitempty"`
	// Deployment is the bundle the site serves; nil serves a placeholder.
	Deployment *Deployment `json:"deployment,omitempty"`
	// History holds earlier deployments, most recent first, for rollback.
	History []Deployment `json:"history,omitempty"`
	// Revision is the etcd modification revision of the site's key when it
	// was read. It is output only: writes carry the expected revision in a
	// precondition instead.
	Revision int64 `json:"revision,omitempty"`

	// unreadable marks, inside an import, a stored record that does not
	// decode: it is replaced or removed whatever the document says.
	unreadable bool
}

// SiteOptions are per-site serving options.
type SiteOptions struct {
	// RedirectAliases makes every alias answer with a permanent redirect to
	// the primary domain (same path and query) instead of serving the content.
	RedirectAliases bool `json:"redirectAliases,omitempty"`
	// RedirectHTML answers /page.html with a permanent redirect to /page
	// (which serves page.html: clean URLs are always on).
	RedirectHTML bool `json:"redirectHtml,omitempty"`
}

// Names returns the domain followed by the aliases.
func (s Site) Names() []string {
	return append([]string{s.Domain}, s.Aliases...)
}

// Equal reports whether two sites describe the same desired state, ignoring
// their revisions.
func (s Site) Equal(o Site) bool {
	return s.Domain == o.Domain && slices.Equal(s.Aliases, o.Aliases) && s.Options == o.Options && s.TLS.Equal(o.TLS) &&
		s.Deployment.Equal(o.Deployment) && slices.EqualFunc(s.History, o.History, func(a, b Deployment) bool { return a.Equal(&b) })
}

// Deployment says which bundle a site serves.
type Deployment struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// SHA256 pins the bundle's content.
	SHA256     string    `json:"sha256"`
	DeployedAt time.Time `json:"deployedAt"`
}

// Equal compares two deployments (nil equals nil only).
func (d *Deployment) Equal(o *Deployment) bool {
	if d == nil || o == nil {
		return d == o
	}
	return d.App == o.App && d.Version == o.Version && d.SHA256 == o.SHA256 && d.DeployedAt.Equal(o.DeployedAt)
}

// Validate checks a deployment's fields.
func (d *Deployment) Validate() error {
	if d == nil {
		return nil
	}
	return Bundle{App: d.App, Version: d.Version, SHA256: d.SHA256}.Validate()
}

// MaxHistory is how many earlier deployments a site keeps for rollback.
const MaxHistory = 10

// Snapshot is the whole desired state at one etcd revision.
type Snapshot struct {
	// Revision is the state revision: the etcd revision of the last change
	// to the desired state.
	Revision int64 `json:"revision"`
	// Sites is sorted by domain.
	Sites []Site `json:"sites"`
	// Bundles are every uploaded bundle, sorted by app and upload time.
	Bundles []Bundle `json:"bundles,omitempty"`
	// Certificates are every certificate record, sorted by ID, with their
	// keys sealed.
	Certificates []Certificate `json:"certificates,omitempty"`
	// DHParams are the leader's Diffie-Hellman parameters; nil until the
	// leader has generated them.
	DHParams *DHParams `json:"dhParams,omitempty"`
	// PendingImport is non-empty while an import that spans several etcd
	// transactions has not completed: the state is then a mix of old and
	// new, and nodes keep serving what they applied before.
	PendingImport string `json:"pendingImport,omitempty"`
	// Unreadable maps the domain of each site record that could not be
	// read (it does not decode, or names another domain than its key) to
	// why. Such a site is not in Sites.
	Unreadable map[string]string `json:"unreadable,omitempty"`
	// BadRecords maps the key of each bundle, certificate or DH parameters
	// record that does not decode to why; such a record is left out.
	BadRecords map[string]string `json:"badRecords,omitempty"`
}

// Site returns the site with the given primary domain.
func (s *Snapshot) Site(domain string) (Site, bool) {
	i, ok := slices.BinarySearchFunc(s.Sites, domain, siteDomainCmp)
	if !ok {
		return Site{}, false
	}
	return s.Sites[i], true
}

// ByDomain orders sites by domain, the order of a snapshot's sites.
func ByDomain(a, b Site) int { return cmp.Compare(a.Domain, b.Domain) }

// siteDomainCmp finds a domain in sites ordered ByDomain.
func siteDomainCmp(s Site, domain string) int { return cmp.Compare(s.Domain, domain) }

// Document is the exported form of the whole state, as `state get` writes it
// and `state set` reads it.
type Document struct {
	// Revision is the state revision of the export. On import
	// a non-zero Revision makes the import fail with ErrConflict when the
	// state changed since.
	Revision int64 `json:"revision,omitempty"`
	// Sites is the complete list of sites: sites not listed are removed.
	Sites []Site `json:"sites"`
	// Certificates is the complete list of certificate records, private
	// keys sealed with the cluster key: certificates not listed are
	// removed. Only a cluster with the same secrets.key can open them.
	Certificates []Certificate `json:"certificates,omitempty"`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
