package node

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
type tlsFiles struct {
	dir    string
	sealer *sftls.Sealer
	gid    int // > 0: the nginx workers' group, which may read keys
	// written maps a record hash to its files; owned by the worker.
	written map[string]webserver.CertFiles
	// warned is the last DH parameters warning logged.
	warned string
}

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

// files returns the files of c, writing them first if needed.
func (t *tlsFiles) files(c state.Certificate) (webserver.CertFiles, error) {
	hash := certHash(c)
	if f, ok := t.written[hash]; ok {
		return f, nil
	}
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
	f.Staple = staplable([]byte(c.ChainPEM))
	t.written[hash] = f
	return f, nil
}

// staplable reports whether nginx can staple OCSP for a chain: the leaf
// names an OCSP responder and the chain holds its issuer.
func staplable(chainPEM []byte) bool {
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
	return len(certs) >= 2 && len(certs[0].OCSPServer) > 0 && certs[0].CheckSignatureFrom(certs[1]) == nil
}

// dhParams writes the DH parameters (the leader's, or ffdhe2048 until
// they exist) and returns their path. Parameters that are malformed or
// smaller than sftls.MinServedDHBits are not used: ffdhe2048 is, and the
// returned warning says why.
func (t *tlsFiles) dhParams(p *state.DHParams) (path string, warning error, err error) {
	pemBytes := sftls.FFDHE2048()
	if p != nil {
		bits, err := sftls.DHParamsBits([]byte(p.PEM))
		switch {
		case err != nil:
			warning = fmt.Errorf("the fleet's DH parameters are unusable (%w); using ffdhe2048", err)
		case bits < sftls.MinServedDHBits:
			warning = fmt.Errorf("the fleet's DH parameters have %d bits, fewer than the %d OpenSSL accepts; using ffdhe2048 (set tls.dhParamBits)", bits, sftls.MinServedDHBits)
		default:
			pemBytes = []byte(p.PEM)
		}
	}
	sum := sha256.Sum256(pemBytes)
	path = filepath.Join(t.dir, "dhparams-"+hex.EncodeToString(sum[:8])+".pem")
	if _, err := os.Stat(path); err == nil {
		return path, warning, nil
	}
	if err := t.mkdir(); err != nil {
		return "", nil, err
	}
	if err := fsutil.WriteFileAtomic(path, pemBytes, 0o644); err != nil {
		return "", nil, fmt.Errorf("write dh parameters: %w", err)
	}
	return path, warning, nil
}

// mkdir creates the directory, which only this user (and the workers'
// group) may enter.
func (t *tlsFiles) mkdir() error {
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
	switch site.ModeOf() {
	case state.TLSImported, state.TLSSelfSigned:
		add(site.CertIDs()[0], site.Names())
	case state.TLSACME:
		for _, name := range site.Names() {
			add(state.AutoCertID(state.CertACME, name), []string{name})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("https: %w", err)
	}
	return out, nil
}

// prune removes the files no longer named by keep (file paths) or by the
// previous plan, and forgets them.
func (t *tlsFiles) prune(keep map[string]bool) error {
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
	return errors.Join(errs...)
}

// planFiles returns every file a plan names.
func planFiles(p webserver.Plan) []string {
	var out []string
	if p.DHParams != "" {
		out = append(out, p.DHParams)
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
