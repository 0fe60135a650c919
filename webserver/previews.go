package webserver

import (
	"fmt"
	"strings"
)

// Previews says how the hosts of deploy previews are served: every name
// one label under Domain. They share one server (two with HTTPS) that
// serves them as the catch-all serves sites, from their links, and adds
// X-Robots-Tag: noindex; so adding, moving or removing a preview is a
// link switch, like a plain site. A preview with rules of its own gets a
// server of its own, as a site does, with the same header.
type Previews struct {
	// Domain is the preview domain, e.g. "previews.example.net".
	Domain string
	// Chain and Key are the certificate (for *.<Domain>) and key that
	// previews are served with over HTTPS, as absolute paths; "" serves
	// previews over HTTP only. They are loaded when the config is, so
	// replacing the certificate reloads nginx.
	Chain, Key string
}

// noIndex is the header every preview answers with.
const noIndex = "        add_header X-Robots-Tag \"noindex\" always;\n"

// validatePreviews checks the plan's preview settings.
func validatePreviews(p *Previews, https bool) error {
	if p == nil {
		return nil
	}
	if err := validateName(p.Domain); err != nil {
		return fmt.Errorf("preview domain: %w", err)
	}
	if (p.Chain == "") != (p.Key == "") {
		return fmt.Errorf("previews: give both a certificate chain and a key, or neither")
	}
	if p.Chain != "" && https {
		for _, f := range []string{p.Chain, p.Key} {
			if err := validatePath(f); err != nil {
				return fmt.Errorf("previews certificate: %w", err)
			}
		}
	}
	return nil
}

// checkPreview checks that a preview site is one label under the preview
// domain and has nothing a preview cannot have (aliases, TLS of its own).
func checkPreview(site Site, p *Previews) error {
	if !site.Preview {
		return nil
	}
	if p == nil {
		return fmt.Errorf("preview %s: this node serves no previews (no preview domain is set)", site.Domain)
	}
	label, ok := strings.CutSuffix(site.Domain, "."+p.Domain)
	if !ok || label == "" || strings.Contains(label, ".") {
		return fmt.Errorf("preview %s is not one label under the preview domain %s", site.Domain, p.Domain)
	}
	if len(site.Aliases) > 0 || site.TLS != nil || site.RedirectAliases || site.RedirectHTML {
		return fmt.Errorf("preview %s: a preview has no aliases, TLS settings or redirect options of its own", site.Domain)
	}
	return nil
}

// previewTLS is the listen and certificate directives of a preview
// server over HTTPS, each line at indent; "" without HTTPS.
func previewTLS(p *Previews, https *listenAddr, indent string) string {
	if p == nil || https == nil || p.Chain == "" {
		return ""
	}
	return indent + "listen " + https.directive() + " " + https.tlsParams() + ";\n" +
		indent + "ssl_certificate " + p.Chain + ";\n" +
		indent + "ssl_certificate_key " + p.Key + ";\n"
}

// previewServer serves every preview without rules of its own.
func previewServer(p *Previews, https *listenAddr) string {
	return "\n    # Deploy previews: every host one label under " + p.Domain + ", never indexed.\n" +
		"    server {\n        listen @LISTEN@;\n" + previewTLS(p, https, "        ") +
		"        server_name *." + p.Domain + ";\n" +
		strings.Replace(catchAllBody(false), "@HSTS@", noIndex, 1)
}
