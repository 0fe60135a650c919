package webserver

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sitefleet/sitefleet/internal/fsutil"
)

// Document roots and certificates are resolved through the filesystem,
// not the config:
//
//   - <Prefix>/hosts/<name> is a symlink to the directory a name serves,
//     and nginx serves `root <Prefix>/hosts/$host`. $host is safe in a
//     path: nginx refuses a Host with "/", "\0" or "..", lower-cases it and
//     drops the port and a trailing dot; a name without a link is an
//     unknown host.
//   - <Prefix>/certs/<name> is a symlink to <Prefix>/certsets/<id>/, which
//     holds chain.pem and key.pem (links to the caller's files); the SNI
//     maps name <Prefix>/certs/<name>/chain.pem, which nginx loads per
//     handshake. One rename switches certificate and key together.
//
// Switching a site's root (a deploy, a rollback, adding or removing a
// plain site) or a name's certificate (issue, renewal) is one atomic
// rename of a symlink, with no reload: requests that already opened a file
// finish with it, and the next request or handshake sees the new one. This
// is why the config must never enable open_file_cache.

// linkSet keeps one directory of symlinks, <dir>/<name> -> target, in line
// with what the plan wants. It is used under applySem only.
type linkSet struct {
	dir, tmp string
	live     map[string]string // name -> target, as on disk
}

func (o Options) hostsDir() string    { return filepath.Join(o.Prefix, "hosts") }
func (o Options) certsDir() string    { return filepath.Join(o.Prefix, "certs") }
func (o Options) certSetsDir() string { return filepath.Join(o.Prefix, "certsets") }
func (o Options) linksTmpDir() string { return filepath.Join(o.Prefix, "links.tmp") }

// loadLinkSet reads the links a previous run left in dir; tmp is where
// new links are made before they are renamed into dir.
func loadLinkSet(dir, tmp string) (*linkSet, error) {
	l := &linkSet{dir: dir, tmp: tmp, live: map[string]string{}}
	for _, d := range []string{dir, tmp} {
		if err := mkdirPublic(d); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // not a link of ours: the next update replaces it
		}
		l.live[e.Name()] = target
	}
	return l, nil
}

// mkdirPublic creates d (0755) if needed.
func mkdirPublic(d string) error {
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", d, err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", d, err)
	}
	return nil
}

// update points every name of want at its target, creating or atomically
// replacing the links that differ. It returns how many it switched.
func (l *linkSet) update(want map[string]string) (int, error) {
	n := 0
	for name, target := range want {
		if l.live[name] == target {
			continue
		}
		if err := l.link(name, target); err != nil {
			return n, err
		}
		l.live[name] = target
		n++
	}
	if n > 0 {
		if err := fsutil.SyncDir(l.dir); err != nil {
			return n, fmt.Errorf("sync %s: %w", l.dir, err)
		}
	}
	return n, nil
}

// link makes <dir>/name point to target with one rename.
func (l *linkSet) link(name, target string) error {
	if err := validateName(name); err != nil { // a file name of ours: never "..", never "/"
		return fmt.Errorf("link: %w", err)
	}
	// One name per set (Apply is serialised): a 253-character host name
	// plus a prefix would exceed NAME_MAX.
	tmp := filepath.Join(l.tmp, filepath.Base(l.dir)+".new")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, name)); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// prune removes the links of names want does not have. It returns how
// many it removed.
func (l *linkSet) prune(want map[string]string) (int, error) { return l.remove(l.live, want) }

// links returns the links every name of plan's sites needs: see
// siteLinks.
func (o Options) links(plan Plan) (hosts, certs map[string]string) {
	hosts, certs = make(map[string]string, len(plan.Sites)), map[string]string{}
	for _, s := range plan.Sites {
		o.siteLinks(plan, s, hosts, certs)
	}
	return hosts, certs
}

// siteLinks adds to hosts and certs the links site needs: its domain and,
// unless they redirect, its aliases to its root (or the placeholder); with
// HTTPS, each name of a certificate to the certificate's set.
func (o Options) siteLinks(plan Plan, site Site, hosts, certs map[string]string) {
	root := cmp.Or(site.Root, plan.PlaceholderRoot)
	hosts[site.Domain] = root
	if !site.RedirectAliases {
		for _, a := range site.Aliases {
			hosts[a] = root
		}
	}
	if plan.HTTPSListen == "" || site.TLS == nil {
		return
	}
	for _, c := range site.TLS.Certificates {
		for _, n := range c.Names {
			certs[n] = o.certSet(c)
		}
	}
}

// siteCertSets creates the certificate sets site needs (with HTTPS).
func (o Options) siteCertSets(plan Plan, site Site) error {
	if plan.HTTPSListen == "" || site.TLS == nil {
		return nil
	}
	for _, c := range site.TLS.Certificates {
		if err := o.ensureCertSet(c); err != nil {
			return err
		}
	}
	return nil
}

// certSet is the directory that pairs a chain with its key.
func (o Options) certSet(c CertFiles) string {
	h := sha256.Sum256([]byte(c.Chain + "\n" + c.Key))
	return filepath.Join(o.certSetsDir(), hex.EncodeToString(h[:12]))
}

// ensureCertSet creates the set of c if it does not exist: a directory
// made aside and renamed into place, holding chain.pem and key.pem as links
// to the caller's files.
func (o Options) ensureCertSet(c CertFiles) error {
	dir := o.certSet(c)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp := filepath.Join(o.linksTmpDir(), "set-"+filepath.Base(dir))
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("certificate set: %w", err)
	}
	if err := mkdirPublic(tmp); err != nil {
		return fmt.Errorf("certificate set: %w", err)
	}
	for name, target := range map[string]string{"chain.pem": c.Chain, "key.pem": c.Key} {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("certificate set: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("certificate set: %w", err)
	}
	return nil
}

// pruneCertSets removes the certificate sets no link points to.
func (o Options) pruneCertSets(links *linkSet) error {
	used := map[string]bool{}
	for _, target := range links.live {
		used[filepath.Base(target)] = true
	}
	entries, err := os.ReadDir(o.certSetsDir())
	if err != nil {
		return fmt.Errorf("read certificate sets: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !used[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(o.certSetsDir(), e.Name())))
		}
	}
	return errors.Join(errs...)
}
