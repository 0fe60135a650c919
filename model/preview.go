package model

import (
	"slices"
	"strings"
	"time"
)

// Preview is a deployment served beside a site's live one, at a host
// name of its own under the fleet's preview domain.
type Preview struct {
	// Name tells the previews of a site apart: [a-z0-9], inner single
	// hyphens, at most MaxPreviewName characters.
	Name string `json:"name"`
	// Host is the name the preview answers at: <name>--<site>.<domain>,
	// the site's dots written as hyphens (see PreviewHost).
	Host string `json:"host"`
	// Deployment is the bundle the preview serves.
	Deployment Deployment `json:"deployment"`
	// ExpiresAt, when set, is when the leader removes the preview.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// MaxPreviewName is the longest preview name; MaxPreviews how many
// previews one site may have.
const (
	MaxPreviewName = 32
	MaxPreviews    = 20
)

// Equal compares two previews.
func (p Preview) Equal(o Preview) bool {
	if (p.ExpiresAt == nil) != (o.ExpiresAt == nil) || p.ExpiresAt != nil && !p.ExpiresAt.Equal(*o.ExpiresAt) {
		return false
	}
	return p.Name == o.Name && p.Host == o.Host && p.Deployment.Equal(&o.Deployment)
}

// Expired reports whether the preview's time is up at now.
func (p Preview) Expired(now time.Time) bool {
	return p.ExpiresAt != nil && !now.Before(*p.ExpiresAt)
}

// PreviewHost is the host name of a site's preview under domain: the
// preview's name, "--", and the site's domain with its dots written as
// hyphens, as one label, so that one wildcard certificate for
// *.<domain> covers every preview. Two sites can map to one host
// ("a-b.example" and "a.b-example"); the name index refuses the second.
func PreviewHost(name, site, domain string) string {
	return name + "--" + strings.ReplaceAll(site, ".", "-") + "." + domain
}

// Preview returns the site's preview called name.
func (s Site) Preview(name string) (Preview, bool) {
	i := slices.IndexFunc(s.Previews, func(p Preview) bool { return p.Name == name })
	if i < 0 {
		return Preview{}, false
	}
	return s.Previews[i], true
}

// Claims returns the host names the site holds in the fleet: its names
// and the hosts of its previews.
func (s Site) Claims() []string {
	out := s.Names()
	for _, p := range s.Previews {
		out = append(out, p.Host)
	}
	return out
}
