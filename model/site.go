package model

import (
	"slices"
	"strings"
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
	// Previews are deployments served beside the live one, each at a
	// host name of its own, sorted by name.
	Previews []Preview `json:"previews,omitempty"`
	// Revision is the etcd modification revision of the site's key when it
	// was read. It is output only: writes carry the expected revision in a
	// precondition instead.
	Revision int64 `json:"revision,omitempty"`
}

// SiteOptions are per-site serving options.
type SiteOptions struct {
	// RedirectAliases makes every alias answer with a permanent redirect to
	// the primary domain (same path and query) instead of serving the content.
	RedirectAliases bool `json:"redirectAliases,omitempty"`
	// RedirectHTML answers /page.html with a permanent redirect to /page
	// (which serves page.html: clean URLs are always on).
	RedirectHTML bool `json:"redirectHtml,omitempty"`
	// KeepAssets, when set, keeps serving the files of earlier
	// deployments that the current one lacks, under the given paths only,
	// for a while after each deploy: a page loaded before a deploy still
	// finds its hashed scripts and styles. Off by default.
	KeepAssets *KeepAssets `json:"keepAssets,omitempty"`
	// Protection, when set, asks for a login (HTTP basic authentication).
	Protection *Protection `json:"protection,omitempty"`
}

// KeepAssets says which files of earlier deployments stay reachable, and
// for how long.
type KeepAssets struct {
	// Paths are path patterns: "/dir/*" for everything under /dir/, or one
	// exact path ("/app.js").
	Paths []string `json:"paths"`
	// WindowSeconds is how long an earlier deployment's files stay
	// reachable after a deploy replaced it.
	WindowSeconds int64 `json:"windowSeconds"`
}

// Equal compares two sets of options.
func (o SiteOptions) Equal(p SiteOptions) bool {
	if o.RedirectAliases != p.RedirectAliases || o.RedirectHTML != p.RedirectHTML || (o.KeepAssets == nil) != (p.KeepAssets == nil) || !o.Protection.Equal(p.Protection) {
		return false
	}
	return o.KeepAssets == nil || o.KeepAssets.WindowSeconds == p.KeepAssets.WindowSeconds && slices.Equal(o.KeepAssets.Paths, p.KeepAssets.Paths)
}

// Keeps reports whether p, a path in a release without its leading "/",
// matches one of the patterns.
func (k *KeepAssets) Keeps(p string) bool {
	return k != nil && MatchPaths(k.Paths, "/"+p)
}

// Names returns the domain followed by the aliases.
func (s Site) Names() []string {
	return append([]string{s.Domain}, s.Aliases...)
}

// Equal reports whether two sites describe the same desired state, ignoring
// their revisions.
func (s Site) Equal(o Site) bool {
	return s.Domain == o.Domain && slices.Equal(s.Aliases, o.Aliases) && s.Options.Equal(o.Options) && s.TLS.Equal(o.TLS) &&
		s.Deployment.Equal(o.Deployment) && slices.EqualFunc(s.History, o.History, func(a, b Deployment) bool { return a.Equal(&b) }) &&
		slices.EqualFunc(s.Previews, o.Previews, Preview.Equal)
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

// Bundle is the metadata of one uploaded version of an app. The bytes live
// on the nodes, addressed by SHA256.
type Bundle struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// SHA256 is the lower-case hex digest of the archive.
	SHA256 string `json:"sha256"`
	// Size is the archive's size in bytes; Files and Unpacked describe
	// its extracted tree.
	Size     int64  `json:"size"`
	Files    int    `json:"files"`
	Unpacked int64  `json:"unpacked"`
	Format   string `json:"format"`
	// Signer is the ID of the key that signed the bundle, if any.
	Signer     string    `json:"signer,omitempty"`
	UploadedAt time.Time `json:"uploadedAt"`
	// UploadedTo is the node that received the upload.
	UploadedTo string `json:"uploadedTo,omitempty"`
	// Revision is the etcd revision of the bundle's key (output only).
	Revision int64 `json:"revision,omitempty"`
}

// Ref names the bundle as app@version.
func (b Bundle) Ref() string { return b.App + "@" + b.Version }

// Document is the exported form of the whole state, as `state get` writes it
// and `state set` reads it.
type Document struct {
	// Revision is the state revision of the export. On import
	// a non-zero Revision makes the import fail with a conflict when the
	// state changed since.
	Revision int64 `json:"revision,omitempty"`
	// Sites is the complete list of sites: sites not listed are removed.
	Sites []Site `json:"sites"`
	// Certificates is the complete list of certificate records, private
	// keys sealed with the cluster key: certificates not listed are
	// removed. Only a cluster with the same secrets.key can open them.
	Certificates []Certificate `json:"certificates,omitempty"`
}

// Change is one difference between the stored state and an imported one.
type Change struct {
	// Action is "add", "update" or "remove".
	Action string `json:"action"`
	// Kind is the kind of object: "site" or "certificate".
	Kind string `json:"kind"`
	// Name identifies the object: the site's domain, the certificate's ID.
	Name string `json:"name"`
}

// ImportResult says what an import changed, or would change on a dry run.
type ImportResult struct {
	Changes []Change `json:"changes"`
	// Revision is the store revision after the import (before it, on a dry
	// run or when nothing changed).
	Revision int64 `json:"revision"`
	DryRun   bool  `json:"dryRun"`
}

// Protection is HTTP basic authentication for a site (and its previews).
type Protection struct {
	// Users may enter; their passwords are kept only as bcrypt hashes,
	// all of one cost.
	Users []BasicUser `json:"users"`
	// Paths are path patterns ("/dir/*" or one exact path) that need a
	// login; none protects every path.
	Paths []string `json:"paths,omitempty"`
	// PreviewsOnly protects the site's previews (every path) and leaves
	// the live site open.
	PreviewsOnly bool `json:"previewsOnly,omitempty"`
}

// BasicUser is one user of a protected site.
type BasicUser struct {
	Name string `json:"name"`
	// Hash is the bcrypt hash of the password ($2a$, $2b$ or $2y$).
	Hash string `json:"hash"`
}

// Equal compares two protections (nil equals nil only).
func (p *Protection) Equal(o *Protection) bool {
	if p == nil || o == nil {
		return p == o
	}
	return p.PreviewsOnly == o.PreviewsOnly && slices.Equal(p.Users, o.Users) && slices.Equal(p.Paths, o.Paths)
}

// Protects reports whether a request for path (with its leading "/") on
// the live site (preview false) or on one of its previews needs a login.
func (p *Protection) Protects(path string, preview bool) bool {
	switch {
	case p == nil:
		return false
	case p.PreviewsOnly:
		return preview
	case len(p.Paths) == 0:
		return true
	}
	return MatchPaths(p.Paths, path)
}

// MatchPaths reports whether path (with its leading "/") matches one of
// the patterns: "/dir/*" matches everything under /dir/, "/*" everything,
// any other pattern that exact path. (A protected "/dir/*" guards /dir as
// well: protect checks /dir/ for it, the directory nginx would answer.)
func MatchPaths(patterns []string, path string) bool {
	for _, pat := range patterns {
		if dir, ok := strings.CutSuffix(pat, "/*"); ok {
			if strings.HasPrefix(path, dir+"/") {
				return true
			}
		} else if path == pat {
			return true
		}
	}
	return false
}
