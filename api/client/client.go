// Package client is the typed Go client of sitefleet's REST API, used by the
// CLI and the tests.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sitefleet/sitefleet/model"
)

// Client talks to one node's API. Any node of a fleet accepts any change.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the API at baseURL (e.g. "http://127.0.0.1:7070")
// that authenticates with token.
func New(baseURL, token string) *Client {
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, http: &http.Client{Timeout: 2 * time.Minute}}
}

// WithTLS returns a copy of c that uses cfg for HTTPS (trusted roots, a
// client certificate).
func (c *Client) WithTLS(cfg *tls.Config) *Client {
	if cfg == nil {
		return c
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	cp := *c
	cp.http = &http.Client{Timeout: c.http.Timeout, Transport: tr}
	return &cp
}

// Error is an error answer of the API.
type Error struct {
	Status  int
	Problem Problem
}

func (e *Error) Error() string {
	msg := e.Problem.Detail
	if msg == "" {
		msg = e.Problem.Title
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// StatusOf returns the HTTP status of an API error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp, decodeError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp, nil
}

// decodeError turns an error answer into an *Error.
func decodeError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &e.Problem) != nil || e.Problem.Title == "" {
		e.Problem = Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: strings.TrimSpace(string(b))}
	}
	return e
}

func sitePath(domain string) string { return "/v1/sites/" + url.PathEscape(domain) }

// ListSites returns every site.
func (c *Client) ListSites(ctx context.Context) (SitesList, error) {
	var out SitesList
	_, err := c.do(ctx, http.MethodGet, "/v1/sites", nil, nil, &out)
	return out, err
}

// GetSite returns one site; its Revision serves as the precondition of a
// later write.
func (c *Client) GetSite(ctx context.Context, domain string) (model.Site, error) {
	var out model.Site
	_, err := c.do(ctx, http.MethodGet, sitePath(domain), nil, nil, &out)
	return out, err
}

// Precondition guards a write: IfMatch is the revision the caller read
// (a changed site answers 412); Create refuses to replace a site (409).
type Precondition struct {
	IfMatch int64
	Create  bool
}

func (p Precondition) header() http.Header {
	h := http.Header{}
	if p.IfMatch != 0 {
		h.Set("If-Match", `"`+strconv.FormatInt(p.IfMatch, 10)+`"`)
	}
	if p.Create {
		h.Set("If-None-Match", "*")
	}
	return h
}

// PutSite creates or replaces a site and returns it as stored.
func (c *Client) PutSite(ctx context.Context, site model.Site, pre Precondition) (model.Site, error) {
	body := map[string]any{"aliases": site.Aliases, "options": site.Options}
	if site.TLS != nil {
		body["tls"] = site.TLS
	}
	var out model.Site
	_, err := c.do(ctx, http.MethodPut, sitePath(site.Domain), pre.header(), body, &out)
	return out, err
}

// DeleteSite removes a site and returns the revision of the change.
func (c *Client) DeleteSite(ctx context.Context, domain string, pre Precondition) (int64, error) {
	var out struct {
		Revision int64 `json:"revision"`
	}
	_, err := c.do(ctx, http.MethodDelete, sitePath(domain), pre.header(), nil, &out)
	return out.Revision, err
}

// GetState exports the whole state.
func (c *Client) GetState(ctx context.Context) (model.Document, error) {
	var out model.Document
	_, err := c.do(ctx, http.MethodGet, "/v1/state", nil, nil, &out)
	return out, err
}

// PutState replaces the whole state with doc, or with dryRun returns the
// changes it would make.
func (c *Client) PutState(ctx context.Context, doc model.Document, dryRun bool) (model.ImportResult, error) {
	var out model.ImportResult
	path := "/v1/state"
	if dryRun {
		path += "?dryRun=true"
	}
	_, err := c.do(ctx, http.MethodPut, path, nil, doc, &out)
	return out, err
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (NodeStatus, error) {
	var out NodeStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &out)
	return out, err
}

// Preview returns what the node would change to converge, changing nothing.
func (c *Client) Preview(ctx context.Context) (Preview, error) {
	var out Preview
	_, err := c.do(ctx, http.MethodGet, "/v1/status/preview", nil, nil, &out)
	return out, err
}

// Cluster returns every node of the fleet as etcd shows it.
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var out ClusterStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, nil, &out)
	return out, err
}

// UploadBundle streams an archive (tar.gz, tar or zip) as app@version. sha
// (hex) and signature (base64 Ed25519 over the digest) are optional; when
// sha is set the node refuses an archive that does not match it.
func (c *Client) UploadBundle(ctx context.Context, app, version string, body io.Reader, sha, signature string) (UploadResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/v1/apps/"+url.PathEscape(app)+"/"+url.PathEscape(version), body)
	if err != nil {
		return UploadResult{}, fmt.Errorf("upload: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if sha != "" {
		req.Header.Set("X-Sitefleet-Sha256", sha)
	}
	if signature != "" {
		req.Header.Set("X-Sitefleet-Signature", signature)
	}
	var out UploadResult
	err = c.stream(req, func(r io.Reader) error { return json.NewDecoder(r).Decode(&out) })
	return out, err
}

func appPath(app, version string) string {
	return "/v1/apps/" + url.PathEscape(app) + "/" + url.PathEscape(version)
}

// PutTree sends the tree of a release to upload (its digest, when not
// "", is checked) and returns the objects the node lacks.
func (c *Client) PutTree(ctx context.Context, app, version string, tree io.Reader, digest string) (TreeResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+appPath(app, version)+"/tree", tree)
	if err != nil {
		return TreeResult{}, fmt.Errorf("put tree: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if digest != "" {
		req.Header.Set("X-Sitefleet-Sha256", digest)
	}
	var out TreeResult
	err = c.stream(req, func(r io.Reader) error { return json.NewDecoder(r).Decode(&out) })
	return out, err
}

// PutObjects sends a stream of object frames ("<sha256> <size>\n" and
// the bytes, repeated).
func (c *Client) PutObjects(ctx context.Context, frames io.Reader) (ObjectsResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/objects", frames)
	if err != nil {
		return ObjectsResult{}, fmt.Errorf("put objects: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var out ObjectsResult
	err = c.stream(req, func(r io.Reader) error { return json.NewDecoder(r).Decode(&out) })
	return out, err
}

// CommitRelease records app@version as the tree sent before, once the
// node holds all its objects.
func (c *Client) CommitRelease(ctx context.Context, app, version string, body CommitRequest) (UploadResult, error) {
	var out UploadResult
	_, err := c.do(ctx, http.MethodPost, appPath(app, version)+"/commit", nil, body, &out)
	return out, err
}

// FetchObject streams one object from the node into w.
func (c *Client) FetchObject(ctx context.Context, sha string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/objects/"+url.PathEscape(sha), nil)
	if err != nil {
		return fmt.Errorf("fetch object: %w", err)
	}
	return c.stream(req, func(r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// FetchObjects asks the node for objects and hands the stream of their
// frames to read.
func (c *Client) FetchObjects(ctx context.Context, shas []string, read func(io.Reader) error) error {
	b, err := json.Marshal(FetchRequest{Objects: shas})
	if err != nil {
		return fmt.Errorf("fetch objects: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/objects/fetch", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("fetch objects: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.stream(req, read)
}

// FetchBundle streams a bundle's archive bytes from the node, into w.
func (c *Client) FetchBundle(ctx context.Context, sha string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/bundles/"+url.PathEscape(sha), nil)
	if err != nil {
		return fmt.Errorf("fetch bundle: %w", err)
	}
	return c.stream(req, func(r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// stream sends req without the client's overall timeout (ctx bounds it)
// and hands a successful body to read.
func (c *Client) stream(req *http.Request, read func(io.Reader) error) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// ListBundles lists every bundle, or those of one app.
func (c *Client) ListBundles(ctx context.Context, app string) (BundleList, error) {
	path := "/v1/apps"
	if app != "" {
		path += "/" + url.PathEscape(app)
	}
	var out BundleList
	_, err := c.do(ctx, http.MethodGet, path, nil, nil, &out)
	return out, err
}

// DeleteBundle removes app@version; a bundle in use is refused (409).
func (c *Client) DeleteBundle(ctx context.Context, app, version string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/apps/"+url.PathEscape(app)+"/"+url.PathEscape(version), nil, nil, nil)
	return err
}

// Deploy makes a site serve app@version. With wait > 0 the node answers
// once every live node serves it, or at the deadline with each node's state.
func (c *Client) Deploy(ctx context.Context, domain, app, version string, wait time.Duration, pre Precondition) (DeployResult, error) {
	var out DeployResult
	_, err := c.do(ctx, http.MethodPut, sitePath(domain)+"/deployment"+waitQuery(wait), pre.header(), map[string]string{"app": app, "version": version}, &out)
	return out, err
}

// Rollback makes a site serve its previous deployment.
func (c *Client) Rollback(ctx context.Context, domain string, wait time.Duration, pre Precondition) (DeployResult, error) {
	var out DeployResult
	_, err := c.do(ctx, http.MethodPost, sitePath(domain)+"/rollback"+waitQuery(wait), pre.header(), nil, &out)
	return out, err
}

// DeployPreview makes the site's preview called name serve app@version
// beside the live deployment. expires is its lifetime ("7d", "36h"; "0"
// for none; "" for the fleet's default).
func (c *Client) DeployPreview(ctx context.Context, domain, name, app, version, expires string, wait time.Duration, pre Precondition) (DeployResult, error) {
	body := map[string]any{"app": app, "version": version}
	if expires != "" {
		body["expires"] = expires
	}
	var out DeployResult
	_, err := c.do(ctx, http.MethodPut, previewPath(domain, name)+waitQuery(wait), pre.header(), body, &out)
	return out, err
}

// RemovePreview removes the site's preview called name.
func (c *Client) RemovePreview(ctx context.Context, domain, name string, pre Precondition) (DeployResult, error) {
	var out DeployResult
	_, err := c.do(ctx, http.MethodDelete, previewPath(domain, name), pre.header(), nil, &out)
	return out, err
}

// PromotePreview makes the site serve the bundle of its preview called
// name; the preview stays.
func (c *Client) PromotePreview(ctx context.Context, domain, name string, wait time.Duration, pre Precondition) (DeployResult, error) {
	var out DeployResult
	_, err := c.do(ctx, http.MethodPost, previewPath(domain, name)+"/promote"+waitQuery(wait), pre.header(), nil, &out)
	return out, err
}

func previewPath(domain, name string) string {
	return sitePath(domain) + "/previews/" + url.PathEscape(name)
}

func waitQuery(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return "?wait=" + url.QueryEscape(d.String())
}

// ImportCertificate uploads a chain and key under an ID.
func (c *Client) ImportCertificate(ctx context.Context, req CertImport) (CertificateInfo, error) {
	var out CertificateInfo
	_, err := c.do(ctx, http.MethodPost, "/v1/certificates", nil, req, &out)
	return out, err
}

// ListCertificates lists the certificates (no key material).
func (c *Client) ListCertificates(ctx context.Context) (CertificateList, error) {
	var out CertificateList
	_, err := c.do(ctx, http.MethodGet, "/v1/certificates", nil, nil, &out)
	return out, err
}

// GetCertificate shows one certificate with its chain (no key material).
func (c *Client) GetCertificate(ctx context.Context, id string) (CertificateInfo, error) {
	var out CertificateInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/certificates/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// DeleteCertificate removes a certificate and its sealed key.
func (c *Client) DeleteCertificate(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/certificates/"+url.PathEscape(id), nil, nil, nil)
	return err
}
