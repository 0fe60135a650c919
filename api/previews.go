package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// Previewer is what the preview handlers need of the state store.
type Previewer interface {
	DeployPreview(ctx context.Context, domain, name, host, app, version string, expires *time.Time, pre state.Precondition) (state.Site, error)
	RemovePreview(ctx context.Context, domain, name string, pre state.Precondition) (state.Site, error)
	PromotePreview(ctx context.Context, domain, name string, pre state.Precondition) (state.Site, error)
}

// PreviewOptions are the fleet's preview settings, as this node has them.
type PreviewOptions struct {
	// Domain is the preview domain; "" refuses previews.
	Domain string
	// Expires is the lifetime of a preview deployed without one; 0 is
	// none.
	Expires time.Duration
}

// MaxPreviewLifetime is the longest lifetime a preview may be given.
const MaxPreviewLifetime = 365 * 24 * time.Hour

// previewTarget reads the site, the preview's name and the precondition,
// and checks that the caller may change the site.
func (s *server) previewTarget(r *http.Request) (string, string, state.Precondition, error) {
	domain, pre, err := siteTarget(r)
	if err != nil {
		return "", "", pre, err
	}
	if err := checkSite(r.Context(), domain); err != nil {
		return "", "", pre, err
	}
	name := chi.URLParam(r, "name")
	if err := state.ValidatePreviewName(name); err != nil {
		return "", "", pre, err
	}
	return domain, name, pre, nil
}

// previewBody is the body of PUT /v1/sites/{domain}/previews/{name}.
type previewBody struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// Expires is the preview's lifetime: a duration ("36h", "7d"); "0"
	// keeps it until it is removed; absent, the fleet's default.
	Expires *string `json:"expires,omitempty"`
}

func (s *server) putPreview(w http.ResponseWriter, r *http.Request) error {
	domain, name, pre, err := s.previewTarget(r)
	if err != nil {
		return err
	}
	if s.opts.Previews.Domain == "" {
		return httpError(http.StatusConflict, "previews are off on this node: set previews.domain on every node")
	}
	var body previewBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	life := s.opts.Previews.Expires
	if body.Expires != nil {
		if life, err = ParseLifetime(*body.Expires); err != nil {
			return httpError(http.StatusBadRequest, "expires: %v", err)
		}
	}
	var expires *time.Time
	if life > 0 {
		t := time.Now().Add(life).UTC().Truncate(time.Second)
		expires = &t
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	host := model.PreviewHost(name, domain, s.opts.Previews.Domain)
	site, err := s.previews.DeployPreview(r.Context(), domain, name, host, body.App, body.Version, expires, pre)
	if err != nil {
		return err
	}
	return s.answerDeployment(w, r, site, host, wait)
}

func (s *server) deletePreview(w http.ResponseWriter, r *http.Request) error {
	domain, name, pre, err := s.previewTarget(r)
	if err != nil {
		return err
	}
	site, err := s.previews.RemovePreview(r.Context(), domain, name, pre)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(site.Revision))
	if !canSeeHashes(r) {
		site = withoutHashes(site)
	}
	return writeJSON(w, http.StatusOK, site.Revision, client.DeployResult{Site: site})
}

func (s *server) promotePreview(w http.ResponseWriter, r *http.Request) error {
	domain, name, pre, err := s.previewTarget(r)
	if err != nil {
		return err
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	site, err := s.previews.PromotePreview(r.Context(), domain, name, pre)
	if err != nil {
		return err
	}
	return s.answerDeployment(w, r, site, site.Domain, wait)
}

// ParseLifetime reads a preview's lifetime: a Go duration or a whole
// number of days ("7d"), from 1 minute to MaxPreviewLifetime; "0" is none.
func ParseLifetime(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 365 {
			return 0, httpError(http.StatusBadRequest, "%q: give whole days from 1d to 365d, or a duration such as 36h", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, httpError(http.StatusBadRequest, "%q is neither a duration (36h) nor a number of days (7d)", v)
		}
	}
	if d < time.Minute || d > MaxPreviewLifetime {
		return 0, httpError(http.StatusBadRequest, "%q: a preview lives from 1m to 365d (0 for no expiry)", v)
	}
	return d, nil
}

// underPreviewDomain refuses site names that are the preview domain or
// under it: those hosts are the previews'.
func (s *server) underPreviewDomain(names []string) error {
	d := s.opts.Previews.Domain
	if d == "" {
		return nil
	}
	for _, n := range names {
		n = strings.ToLower(n)
		if n == d || strings.HasSuffix(n, "."+d) {
			return httpError(http.StatusUnprocessableEntity, "name %q is under the preview domain %s, which is for previews", n, d)
		}
	}
	return nil
}
