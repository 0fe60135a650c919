package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// siteBody is the body of PUT /v1/sites/{domain}.
type siteBody struct {
	Domain  string            `json:"domain,omitempty"`
	Aliases []string          `json:"aliases,omitempty"`
	Options state.SiteOptions `json:"options"`
	TLS     *state.SiteTLS    `json:"tls,omitempty"`
	// Revision, when set, acts as If-Match: the write fails with 412 if the
	// site changed since.
	Revision int64 `json:"revision,omitempty"`
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// domainParam returns the normalised domain of the request path.
func domainParam(r *http.Request) (string, error) {
	return state.NormalizeHostname(chi.URLParam(r, "domain"))
}

// siteTarget reads the domain and the precondition of a write to a site.
func siteTarget(r *http.Request) (string, state.Precondition, error) {
	domain, err := domainParam(r)
	if err != nil {
		return "", state.Precondition{}, err
	}
	pre, err := precondition(r)
	return domain, pre, err
}

// precondition reads If-Match (a revision, as an ETag) and If-None-Match: *.
func precondition(r *http.Request) (state.Precondition, error) {
	var pre state.Precondition
	if v := r.Header.Get("If-None-Match"); v != "" {
		if strings.TrimSpace(v) != "*" {
			return pre, httpError(http.StatusBadRequest, "If-None-Match supports only *")
		}
		pre.IfNoneMatch = true
	}
	if v := r.Header.Get("If-Match"); v != "" {
		rev, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(strings.TrimSpace(v), "W/"), `"`), 10, 64)
		if err != nil || rev <= 0 {
			return pre, httpError(http.StatusBadRequest, "If-Match must be a revision as returned in the ETag header, e.g. \"42\"")
		}
		pre.IfMatch = rev
	}
	return pre, nil
}

func (s *server) listSites(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.sites.Snapshot(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, snap.Revision, client.SitesList{Revision: snap.Revision, Sites: visibleSites(r, snap.Sites)})
}

func (s *server) getSite(w http.ResponseWriter, r *http.Request) error {
	domain, err := domainParam(r)
	if err != nil {
		return err
	}
	site, rev, err := s.sites.GetSite(r.Context(), domain)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(site.Revision))
	if !canSeeHashes(r) {
		site = withoutHashes(site)
	}
	return writeJSON(w, http.StatusOK, rev, site)
}

func (s *server) putSite(w http.ResponseWriter, r *http.Request) error {
	domain, pre, err := siteTarget(r)
	if err != nil {
		return err
	}
	var body siteBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.Domain != "" {
		d, err := state.NormalizeHostname(body.Domain)
		if err != nil || d != domain {
			return httpError(http.StatusUnprocessableEntity, "body domain %q does not match the path's %q", body.Domain, domain)
		}
	}
	if body.Revision != 0 {
		if pre.IfMatch != 0 && pre.IfMatch != body.Revision {
			return httpError(http.StatusBadRequest, "If-Match %d and body revision %d disagree", pre.IfMatch, body.Revision)
		}
		pre.IfMatch = body.Revision
	}
	if err := s.underPreviewDomain(append([]string{domain}, body.Aliases...)); err != nil {
		return err
	}
	site, err := s.sites.PutSite(r.Context(), state.Site{Domain: domain, Aliases: body.Aliases, Options: body.Options, TLS: body.TLS}, pre)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(site.Revision))
	return writeJSON(w, http.StatusOK, site.Revision, site)
}

func (s *server) deleteSite(w http.ResponseWriter, r *http.Request) error {
	domain, pre, err := siteTarget(r)
	if err != nil {
		return err
	}
	rev, err := s.sites.DeleteSite(r.Context(), domain, pre)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rev, map[string]any{"deleted": domain, "revision": rev})
}

func (s *server) getState(w http.ResponseWriter, r *http.Request) error {
	doc, err := s.docs.Export(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, doc.Revision, doc)
}

func (s *server) putState(w http.ResponseWriter, r *http.Request) error {
	dryRun, err := boolQuery(r, "dryRun")
	if err != nil {
		return err
	}
	var doc state.Document
	if err := decodeJSON(r, &doc); err != nil {
		return err
	}
	if doc.Sites == nil {
		return httpError(http.StatusUnprocessableEntity, "the document has no \"sites\" list; to remove every site, send \"sites\": []")
	}
	for _, site := range doc.Sites {
		if err := s.underPreviewDomain(site.Names()); err != nil {
			return err
		}
	}
	if len(doc.Certificates) > 0 {
		if s.opts.Certificates == nil {
			return httpError(http.StatusUnprocessableEntity, "this node cannot import certificates")
		}
		if err := s.opts.Certificates.CheckRecords(doc.Certificates); err != nil {
			return err
		}
	}
	res, err := s.docs.Import(r.Context(), doc, dryRun)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res.Revision, res)
}

func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, httpError(http.StatusBadRequest, "query parameter %s must be true or false, not %q", name, v)
	}
	return b, nil
}

// hiddenHash stands in for password hashes in what non-admin tokens read.
const hiddenHash = "(hidden)"

// canSeeHashes reports whether the request's token may read the password
// hashes of protected sites: only admin tokens, which can change them.
func canSeeHashes(r *http.Request) bool {
	t, _ := PrincipalFrom(r.Context())
	return t.Role.Allows(model.PermAdmin)
}

// withoutHashes returns site with its users' password hashes hidden
// (site itself is not changed).
func withoutHashes(site state.Site) state.Site {
	p := site.Options.Protection
	if p == nil {
		return site
	}
	q := *p
	q.Users = make([]state.BasicUser, len(p.Users))
	for i, u := range p.Users {
		q.Users[i] = state.BasicUser{Name: u.Name, Hash: hiddenHash}
	}
	site.Options.Protection = &q
	return site
}

// visibleSites returns sites as the request may read them: password
// hashes hidden from non-admin tokens, copying only when one is there.
func visibleSites(r *http.Request, sites []state.Site) []state.Site {
	if canSeeHashes(r) || !slices.ContainsFunc(sites, func(s state.Site) bool { return s.Options.Protection != nil }) {
		return sites
	}
	out := make([]state.Site, len(sites))
	for i, s := range sites {
		out[i] = withoutHashes(s)
	}
	return out
}
