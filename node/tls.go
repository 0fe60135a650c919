package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sitefleet/sitefleet/internal/fsutil"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
	"github.com/sitefleet/sitefleet/webserver"
)

// tlsFiles writes the certificates and DH parameters nginx needs into the
// node's TLS directory, in clear, and remembers what it wrote. Files are
// named by a hash of their record, so a renewed certificate is a new file
// and the config that names the old one keeps working until it is
// replaced. Keys are written with mode 0600 (0640 for the worker's group
// when the node runs as root and nginx workers run as another user).
// All of it is owned by the worker goroutine.
type tlsFiles struct {
	dir    string
	sealer *sftls.Sealer
	gid    int // > 0: the nginx workers' group, which may read keys
	log    *slog.Logger
	// dirReady is set once the directory exists with its mode.
	dirReady bool
	// written maps a record hash to its files.
	written map[string]webserver.CertFiles
	// dhFrom is the fleet's DH parameters PEM ("" for none) that dhPath
	// was written for.
	dhFrom, dhPath string
	// prev are the files the applied plan named at the last clean-up.
	prev []string
	// hashes remembers certHash per certificate ID: a pass looks up every
	// HTTPS site's certificate, and hashing each record each time cost
	// more than the rest of the pass at 100,000 sites.
	hashes map[string]hashedCert
	// dirty: files were written since the last clean-up; certs is how
	// many certificate records there were then, cleaned when.
	dirty   bool
	certs   int
	cleaned time.Time
}

// hashedCert is a certificate record's content and its certHash.
type hashedCert struct{ chain, key, hash string }

// cleanInterval bounds how long a file no site uses any more (its
// certificate still exists) stays; files of a renewed or removed
// certificate go at the pass that follows.
const cleanInterval = 10 * time.Minute

// certHash names a certificate record's files.
func certHash(c state.Certificate) string {
	h := sha256.New()
	h.Write([]byte(c.ID))
	h.Write([]byte{0})
	h.Write([]byte(c.ChainPEM))
	h.Write([]byte{0})
	h.Write([]byte(c.KeySealed))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// hash returns certHash(c), computed once per record content. Comparing
// the strings is cheap: a record shared by many sites is one string.
func (t *tlsFiles) hash(c state.Certificate) string {
	if h, ok := t.hashes[c.ID]; ok && h.chain == c.ChainPEM && h.key == c.KeySealed {
		return h.hash
	}
	if t.hashes == nil {
		t.hashes = map[string]hashedCert{}
	}
	h := certHash(c)
	t.hashes[c.ID] = hashedCert{chain: c.ChainPEM, key: c.KeySealed, hash: h}
	return h
}

// files returns the files of c, writing them first if needed.
func (t *tlsFiles) files(c state.Certificate) (webserver.CertFiles, error) {
	hash := t.hash(c)
	if f, ok := t.written[hash]; ok {
		return f, nil
	}
	t.dirty = true
	key, err := sftls.OpenKey(c, t.sealer)
	if err != nil {
		return webserver.CertFiles{}, err
	}
	f := webserver.CertFiles{
		Chain: filepath.Join(t.dir, hash+".crt"),
		Key:   filepath.Join(t.dir, hash+".key"),
	}
	if err := t.mkdir(); err != nil {
		return webserver.CertFiles{}, err
	}
	if err := fsutil.WriteFileAtomic(f.Chain, []byte(c.ChainPEM), 0o644); err != nil {
		return webserver.CertFiles{}, fmt.Errorf("write certificate %s: %w", c.ID, err)
	}
	// nginx workers load the key at each handshake: with workers running
	// as another user, their group may read it, and nobody else.
	mode := os.FileMode(0o600)
	if t.gid > 0 {
		mode = 0o640
	}
	if err := fsutil.WriteFileAtomic(f.Key, key, mode); err != nil {
		return webserver.CertFiles{}, fmt.Errorf("write key of certificate %s: %w", c.ID, err)
	}
	if t.gid > 0 {
		if err := os.Chown(f.Key, 0, t.gid); err != nil {
			return webserver.CertFiles{}, fmt.Errorf("key of certificate %s: %w", c.ID, err)
		}
	}
	f.Staple = sftls.Staplable([]byte(c.ChainPEM))
	t.written[hash] = f
	return f, nil
}

// dhParams writes the DH parameters (the leader's, or ffdhe2048 until
// they exist) when they changed, and returns their path. Parameters that
// are malformed or smaller than sftls.MinServedDHBits are not used:
// ffdhe2048 is, and a warning says why, once per change.
func (t *tlsFiles) dhParams(p *state.DHParams) (string, error) {
	from := ""
	if p != nil {
		from = p.PEM
	}
	if t.dhPath != "" && from == t.dhFrom {
		return t.dhPath, nil
	}
	pemBytes := sftls.FFDHE2048()
	if p != nil {
		bits, err := sftls.DHParamsBits([]byte(p.PEM))
		switch {
		case err != nil:
			t.log.Warn("the fleet's DH parameters are unusable; using ffdhe2048", "err", err)
		case bits < sftls.MinServedDHBits:
			t.log.Warn("the fleet's DH parameters are fewer bits than OpenSSL accepts; using ffdhe2048 (set tls.dhParamBits)",
				"bits", bits, "min", sftls.MinServedDHBits)
		default:
			pemBytes = []byte(p.PEM)
		}
	}
	sum := sha256.Sum256(pemBytes)
	path := filepath.Join(t.dir, "dhparams-"+hex.EncodeToString(sum[:8])+".pem")
	if err := t.mkdir(); err != nil {
		return "", err
	}
	if err := fsutil.WriteFileAtomic(path, pemBytes, 0o644); err != nil {
		return "", fmt.Errorf("write dh parameters: %w", err)
	}
	t.dhFrom, t.dhPath, t.dirty = from, path, true
	return path, nil
}

// mkdir creates the directory, which only this user (and the workers'
// group) may enter, once.
func (t *tlsFiles) mkdir() error {
	if t.dirReady {
		return nil
	}
	mode := os.FileMode(0o700)
	if t.gid > 0 {
		mode = 0o750
	}
	if err := os.MkdirAll(t.dir, mode); err != nil {
		return fmt.Errorf("tls directory: %w", err)
	}
	if err := os.Chmod(t.dir, mode); err != nil {
		return fmt.Errorf("tls directory: %w", err)
	}
	if t.gid > 0 {
		if err := os.Chown(t.dir, 0, t.gid); err != nil {
			return fmt.Errorf("tls directory: %w", err)
		}
	}
	t.dirReady = true
	return nil
}

// siteTLS returns how site is served over HTTPS given the certificates,
// or nil when it is not. A problem the operator must fix is returned as an
// error; a certificate the leader has not issued yet is not one.
func (t *tlsFiles) siteTLS(site state.Site, certs map[string]state.Certificate) (*webserver.SiteTLS, error) {
	if site.TLS == nil || site.ModeOf() == state.TLSNone {
		return nil, nil
	}
	out := &webserver.SiteTLS{RedirectHTTP: site.TLS.RedirectHTTP}
	if site.TLS.HSTS != nil {
		out.HSTS = site.TLS.HSTS.Header()
	}
	var errs []error
	add := func(id string, names []string) {
		c, ok := certs[id]
		if !ok {
			if site.ModeOf() == state.TLSImported {
				errs = append(errs, fmt.Errorf("certificate %q does not exist", id))
			}
			return
		}
		f, err := t.files(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate %q: %w", id, err))
			return
		}
		f.Names = names
		out.Certificates = append(out.Certificates, f)
	}
	ids := site.CertIDs()
	if site.ModeOf() == state.TLSACME {
		for i, name := range site.Names() { // one certificate per name
			add(ids[i], []string{name})
		}
	} else {
		add(ids[0], site.Names())
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("https: %w", err)
	}
	return out, nil
}

// applied removes the files that neither plan, now applied, nor the one
// applied at the last clean-up names (old nginx workers may still be
// finishing requests with those), and forgets them. Listing every file a
// plan names costs the fleet, so it runs only when a file was written
// (a renewal, new parameters) or the number of certificates changed since
// the last clean-up, or cleanInterval passed.
func (t *tlsFiles) applied(plan webserver.Plan, certs int) error {
	if !t.dirty && certs == t.certs && time.Since(t.cleaned) < cleanInterval {
		return nil
	}
	t.dirty, t.certs, t.cleaned = false, certs, time.Now()
	files := planFiles(plan)
	keep := map[string]bool{}
	for _, f := range append(files, t.prev...) {
		keep[f] = true
	}
	t.prev = files
	entries, err := os.ReadDir(t.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list tls directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join(t.dir, e.Name())
		if keep[path] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for hash, f := range t.written {
		if !keep[f.Chain] {
			delete(t.written, hash)
		}
	}
	for id, h := range t.hashes {
		if _, ok := t.written[h.hash]; !ok {
			delete(t.hashes, id)
		}
	}
	return errors.Join(errs...)
}

// planFiles returns every file a plan names.
func planFiles(p webserver.Plan) []string {
	var out []string
	if p.DHParams != "" {
		out = append(out, p.DHParams)
	}
	if p.Previews != nil && p.Previews.Chain != "" {
		out = append(out, p.Previews.Chain, p.Previews.Key)
	}
	for _, s := range p.Sites {
		if s.TLS == nil {
			continue
		}
		for _, c := range s.TLS.Certificates {
			out = append(out, c.Chain, c.Key)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}
