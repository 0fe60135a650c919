package node

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sitefleet/sitefleet/deploy/manifest"
	"github.com/sitefleet/sitefleet/protect"
	"github.com/sitefleet/sitefleet/state"
)

// bundleLogin is a Basic-Auth block of a bundle's _headers: a path
// pattern and who may request it.
type bundleLogin struct {
	segments []string // the pattern's, as manifest.Pattern has them
	logins   []protect.Login
}

// logins holds the Basic-Auth blocks of the bundles whose rules were
// read, by digest; the worker writes it, GateOf reads it from the API.
type logins struct{ m sync.Map } // sha -> []bundleLogin

func (l *logins) put(sha string, m manifest.Manifest) {
	var out []bundleLogin
	for _, h := range m.Headers {
		if len(h.BasicAuth) == 0 {
			continue
		}
		b := bundleLogin{segments: h.Path.Segments}
		for _, c := range h.BasicAuth {
			b.logins = append(b.logins, protect.Login{User: c.User, Password: c.Password})
		}
		out = append(out, b)
	}
	if out != nil {
		l.m.Store(sha, out)
	}
}

// deny guards every path of bundle sha with a login nobody has: its
// _headers asks for logins that could not be read.
func (l *logins) deny(sha string) {
	l.m.Store(sha, []bundleLogin{{segments: []string{"*"}, logins: []protect.Login{{}}}})
}

// forget drops what is known of bundle sha (it left this node).
func (l *logins) forget(sha string) { l.m.Delete(sha) }

// mentionsBasicAuth reports whether the bundle at root has a _headers
// file that mentions Basic-Auth (or cannot be read).
func mentionsBasicAuth(root string) bool {
	f, err := os.Open(filepath.Join(root, manifest.HeadersFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	return err != nil || bytes.Contains(bytes.ToLower(b), []byte("basic-auth"))
}

func (l *logins) of(sha string) []bundleLogin {
	v, ok := l.m.Load(sha)
	if !ok {
		return nil
	}
	return v.([]bundleLogin)
}

// protected reports whether nginx must ask about requests for a site's
// live content (preview false) or a preview that serves bundle sha.
func (n *Node) protected(s state.Site, sha string, preview bool) bool {
	p := s.Options.Protection
	return p != nil && (preview || !p.PreviewsOnly) || sha != "" && len(n.logins.of(sha)) > 0
}

// GateOf returns what guards host in the applied state: its site's
// protection and its bundle's Basic-Auth blocks. false for a host no
// site serves.
func (n *Node) GateOf(host string) (protect.Gate, bool) {
	domain, preview, ok := n.SiteOf(host)
	if !ok {
		return protect.Gate{}, false
	}
	a := n.applied.Load()
	site, ok := a.Site(domain)
	if !ok {
		return protect.Gate{}, false
	}
	sha := ""
	if preview {
		for _, p := range site.Previews {
			if p.Host == host {
				sha = p.Deployment.SHA256
			}
		}
	} else if site.Deployment != nil {
		sha = site.Deployment.SHA256
	}
	prot, blocks := site.Options.Protection, n.logins.of(sha)
	gate := protect.Gate{Realm: domain, Logins: func(path string) []protect.Login {
		var out []protect.Login
		if prot.Protects(path, preview) {
			for _, u := range prot.Users {
				out = append(out, protect.Login{User: u.Name, Hash: u.Hash})
			}
		}
		for _, b := range blocks {
			if matchSegments(b.segments, path) {
				out = append(out, b.logins...)
			}
		}
		return out
	}}
	return gate, true
}

// matchSegments reports whether path (decoded, with its leading "/")
// matches a _headers pattern: literal segments (percent escapes decoded)
// match themselves, ":name" one non-empty segment, a final "*" the rest
// of the path, none included ("/dir/*" guards "/dir" too: a block
// protects at least what it names).
func matchSegments(pattern []string, path string) bool {
	segs := strings.Split(path[1:], "/")
	fixed := pattern
	splat := len(pattern) > 0 && pattern[len(pattern)-1] == "*"
	if splat {
		fixed = pattern[:len(pattern)-1]
	}
	if len(segs) < len(fixed) || !splat && len(segs) != len(fixed) {
		return false
	}
	for i, p := range fixed {
		if strings.HasPrefix(p, ":") {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if lit, err := url.PathUnescape(p); err != nil || lit != segs[i] {
			return false
		}
	}
	return true
}
