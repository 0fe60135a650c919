package node

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
	"github.com/sitefleet/sitefleet/webserver"
)

// PreviewOptions say how this node serves deploy previews.
type PreviewOptions struct {
	// Domain is the preview domain: a preview answers at
	// <name>--<site>.<Domain>. Every node of a fleet needs the same.
	Domain string
	// Certificate is the ID of an imported certificate for *.<Domain>
	// that previews are served with over HTTPS.
	Certificate string
	// SelfSigned, without Certificate, serves previews over HTTPS with a
	// certificate for *.<Domain> that this node makes itself at start.
	SelfSigned bool
}

// selfSignedPreviewsID names the node's own previews certificate.
const selfSignedPreviewsID = "previews-selfsigned"

// previewsPlan returns the web server's preview settings, or nil when
// this node serves no previews. A previews certificate that is missing
// or does not cover the preview domain serves previews over HTTP only,
// and is reported by the returned error.
func (n *Node) previewsPlan(records []state.Certificate) (*webserver.Previews, error) {
	o := n.opts.Previews
	if o == nil || o.Domain == "" {
		return nil, nil
	}
	p := &webserver.Previews{Domain: o.Domain}
	if n.tls == nil {
		return p, nil
	}
	var cert state.Certificate
	switch {
	case o.Certificate != "":
		i := slices.IndexFunc(records, func(c state.Certificate) bool { return c.ID == o.Certificate })
		if i < 0 {
			return p, fmt.Errorf("previews certificate %q does not exist: previews are served over HTTP only", o.Certificate)
		}
		cert = records[i]
		if missing := cert.Uncovered([]string{"preview." + o.Domain}); len(missing) > 0 {
			return p, fmt.Errorf("previews certificate %q does not cover *.%s: previews are served over HTTP only", o.Certificate, o.Domain)
		}
	case o.SelfSigned:
		if n.selfSignedPreviews == nil || !time.Now().Before(n.selfSignedPreviews.NotAfter.Add(-24*time.Hour)) {
			c, err := selfSignedPreviewsCert(o.Domain, n.opts.Sealer)
			if err != nil {
				return p, fmt.Errorf("previews certificate: %w", err)
			}
			n.selfSignedPreviews = &c
		}
		cert = *n.selfSignedPreviews
	default:
		return p, nil
	}
	f, err := n.tls.files(cert)
	if err != nil {
		return p, fmt.Errorf("previews certificate %q: %w", cert.ID, err)
	}
	p.Chain, p.Key = f.Chain, f.Key
	return p, nil
}

// selfSignedPreviewsCert makes a certificate for *.<domain>, valid for a
// year, as a record sealed like the fleet's.
func selfSignedPreviewsCert(domain string, sealer *sftls.Sealer) (state.Certificate, error) {
	now := time.Now()
	chain, key, err := sftls.SelfSigned([]string{"*." + domain}, 365*24*time.Hour, now)
	if err != nil {
		return state.Certificate{}, err
	}
	parsed, err := sftls.ValidateImport(chain, key, nil, now)
	if err != nil {
		return state.Certificate{}, err
	}
	return sftls.NewCertificate(selfSignedPreviewsID, state.CertSelfSigned, parsed, sealer, now)
}

// withPreviews returns the web server's sites with the previews of the
// usable sites added, in domain order. A preview is left out, its host
// named in errs, when this node serves no previews, its host is not
// under the preview domain, or its bundle has not arrived. Without
// previews it returns out as it is.
func (n *Node) withPreviews(out []webserver.Site, sites []state.Site, siteErr func(string, error)) []webserver.Site {
	var previews []webserver.Site
	for _, s := range sites {
		for _, p := range s.Previews {
			if ws, err := n.planPreview(s, p); err != nil {
				siteErr(p.Host, fmt.Errorf("preview %q of %s: %w", p.Name, s.Domain, err))
				if errors.Is(err, errNoBundle) {
					n.waitingForBundles = true // the fetcher's pass must not be skipped
				}
			} else {
				previews = append(previews, ws)
			}
		}
	}
	if len(previews) == 0 {
		return out
	}
	slices.SortFunc(previews, func(a, b webserver.Site) int { return cmp.Compare(a.Domain, b.Domain) })
	merged := make([]webserver.Site, 0, len(out)+len(previews))
	i := 0
	for _, s := range out {
		for i < len(previews) && previews[i].Domain < s.Domain {
			merged = append(merged, previews[i])
			i++
		}
		merged = append(merged, s)
	}
	return append(merged, previews[i:]...)
}

// errNoBundle: a preview's bundle has not arrived on this node yet.
var errNoBundle = errors.New("waiting for its bundle to arrive on this node")

// planPreview is the web server's form of one preview.
func (n *Node) planPreview(s state.Site, p state.Preview) (webserver.Site, error) {
	o := n.opts.Previews
	if o == nil || o.Domain == "" {
		return webserver.Site{}, fmt.Errorf("not served: this node has no previews.domain")
	}
	if len(p.Host) <= len(o.Domain)+1 || p.Host[len(p.Host)-len(o.Domain)-1:] != "."+o.Domain {
		return webserver.Site{}, fmt.Errorf("not served: %s is not under this node's previews.domain %s", p.Host, o.Domain)
	}
	sha := p.Deployment.SHA256
	if n.opts.Bundles == nil || !n.opts.Bundles.Has(sha) {
		return webserver.Site{}, fmt.Errorf("%w: %s@%s (%.12s)", errNoBundle, p.Deployment.App, p.Deployment.Version, sha)
	}
	rules, err := n.rulesFor(sha)
	if err != nil {
		return webserver.Site{}, err
	}
	return webserver.Site{Domain: p.Host, Root: n.opts.Bundles.Root(sha), Rules: rules, Preview: true, Protected: n.protected(s, sha, true)}, nil
}

// errText is err's message, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
