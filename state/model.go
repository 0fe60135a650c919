// Package state validates sitefleet's desired state (its objects are package
// model's) and holds the etcd-backed Store that reads and writes it.
//
// Everything a user can put into the state is validated here against allowlists
// before it is written: no value that reaches an nginx file can end a directive
// or open a block, because values that do not fit are rejected, never escaped.
package state

import (
	"cmp"
	"slices"

	"github.com/sitefleet/sitefleet/model"
)

// The objects of the desired state are package model's; state names them
// too, so code that stores and validates them reads as before.
type (
	Site         = model.Site
	SiteOptions  = model.SiteOptions
	KeepAssets   = model.KeepAssets
	Protection   = model.Protection
	BasicUser    = model.BasicUser
	Deployment   = model.Deployment
	Preview      = model.Preview
	Bundle       = model.Bundle
	Document     = model.Document
	Change       = model.Change
	ImportResult = model.ImportResult
	SiteTLS      = model.SiteTLS
	HSTS         = model.HSTS
	TLSMode      = model.TLSMode
	Certificate  = model.Certificate
	CertType     = model.CertType
)

// The TLS modes of a site and the types of certificate (see package model).
const (
	TLSNone       = model.TLSNone
	TLSSelfSigned = model.TLSSelfSigned
	TLSACME       = model.TLSACME
	TLSImported   = model.TLSImported

	CertSelfSigned = model.CertSelfSigned
	CertImported   = model.CertImported
	CertACME       = model.CertACME
)

// AutoCertID is the ID of the certificate the leader obtains for name:
// "selfsigned-<domain>" covers a whole site, "acme-<name>" one name.
func AutoCertID(typ CertType, name string) string { return model.AutoCertID(typ, name) }

// ValidateDeployment checks a deployment's fields (nil is valid).
func ValidateDeployment(d *Deployment) error {
	if d == nil {
		return nil
	}
	return ValidateBundle(Bundle{App: d.App, Version: d.Version, SHA256: d.SHA256})
}

// MaxHistory is how many earlier deployments a site keeps for rollback.
const MaxHistory = 10

// Snapshot is the whole desired state at one etcd revision.
type Snapshot struct {
	// Revision is the state revision: the etcd revision of the last change
	// to the desired state.
	Revision int64 `json:"revision"`
	// Changed, from a Mirror, is the etcd revision at which its copy last
	// changed. A record written straight into etcd, behind the API's
	// back, does not touch the state revision, but moves Changed. 0 from
	// the Store.
	Changed int64 `json:"-"`
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
