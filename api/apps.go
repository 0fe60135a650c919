package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/state"
)

// MaxWait bounds ?wait= on deployments.
const MaxWait = 10 * time.Minute

// Bundles is what the API needs of the bundle intake and local store
// (deploy.Service).
type Bundles interface {
	ArchiveUploads
	ReleaseUploads
	Objects
}

// ArchiveUploads takes bundles as archives.
type ArchiveUploads interface {
	// Upload ingests an archive for app@version, records it and returns
	// once enough nodes hold it. Created is false when the same content
	// was uploaded before.
	Upload(ctx context.Context, req deploy.Upload) (deploy.Uploaded, error)
	// Open returns the archive of a bundle stored before releases were
	// trees, for a peer to fetch.
	Open(sha string) (io.ReadCloser, int64, error)
}

// ReleaseUploads takes a release by content: its tree, the objects this
// node lacks, then the commit.
type ReleaseUploads interface {
	PutTree(ctx context.Context, r io.Reader, tree string) (deploy.TreeUpload, error)
	PutObjects(ctx context.Context, r io.Reader) (int, error)
	Commit(ctx context.Context, c deploy.Commit) (deploy.Uploaded, error)
}

// Objects serves this node's objects to peers.
type Objects interface {
	OpenObject(sha string) (io.ReadCloser, int64, error)
	WriteObjects(w io.Writer, shas []string) error
}

// Waiter waits until the fleet serves a change.
type Waiter interface {
	// WaitDeployed returns once every live node serves the state at
	// revision rev with no error for domain, or when ctx ends; it reports
	// each node's state either way.
	WaitDeployed(ctx context.Context, domain string, rev int64) (client.DeployWait, error)
}

// Headers of a bundle upload.
const (
	HeaderSHA256    = "X-Sitefleet-Sha256"
	HeaderSignature = "X-Sitefleet-Signature"
)

func (s *server) uploadBundle(w http.ResponseWriter, r *http.Request) error {
	app, version, err := appVersion(r)
	if err != nil {
		return err
	}
	res, err := s.opts.Bundles.Upload(r.Context(), deploy.Upload{
		App: app, Version: version, Body: r.Body,
		SHA256: r.Header.Get(HeaderSHA256), Signature: r.Header.Get(HeaderSignature),
	})
	if err != nil {
		return err
	}
	return answerUpload(w, res)
}

// answerUpload answers a finished upload: 201 when it created the record.
func answerUpload(w http.ResponseWriter, res deploy.Uploaded) error {
	code := http.StatusOK
	if res.Created {
		code = http.StatusCreated
	}
	return writeJSON(w, code, res.Bundle.Revision, client.UploadResult{Bundle: res.Bundle, Created: res.Created, Holders: res.Holders})
}

func (s *server) putTree(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := appVersion(r); err != nil {
		return err
	}
	res, err := s.opts.Bundles.PutTree(r.Context(), r.Body, r.Header.Get(HeaderSHA256))
	if err != nil {
		return err
	}
	missing := res.Missing
	if missing == nil {
		missing = []string{}
	}
	return writeJSON(w, http.StatusOK, 0, client.TreeResult{Tree: res.Tree, Missing: missing, Files: res.Files, Bytes: res.Bytes})
}

func (s *server) putObjects(w http.ResponseWriter, r *http.Request) error {
	n, err := s.opts.Bundles.PutObjects(r.Context(), r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, client.ObjectsResult{Stored: n})
}

func (s *server) commitRelease(w http.ResponseWriter, r *http.Request) error {
	app, version, err := appVersion(r)
	if err != nil {
		return err
	}
	var body client.CommitRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	res, err := s.opts.Bundles.Commit(r.Context(), deploy.Commit{App: app, Version: version, Tree: body.Tree, Signature: body.Signature})
	if err != nil {
		return err
	}
	return answerUpload(w, res)
}

// appVersion reads and checks the app and version of the path.
func appVersion(r *http.Request) (string, string, error) {
	app, version := chi.URLParam(r, "app"), chi.URLParam(r, "version")
	if err := state.ValidateApp(app); err != nil {
		return "", "", err
	}
	if err := state.ValidateVersion(version); err != nil {
		return "", "", err
	}
	return app, version, nil
}

func (s *server) getObject(w http.ResponseWriter, r *http.Request) error {
	sha := chi.URLParam(r, "sha")
	if err := state.ValidateSHA256(sha); err != nil {
		return err
	}
	rc, size, err := s.opts.Bundles.OpenObject(sha)
	if err != nil {
		return state.Errorf(state.NotFound, "object %s is not held by this node", sha)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	_, err = io.Copy(w, rc)
	return err
}

// maxFetchObjects bounds one POST /v1/objects/fetch.
const maxFetchObjects = 10000

func (s *server) fetchObjects(w http.ResponseWriter, r *http.Request) error {
	var body client.FetchRequest
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if len(body.Objects) == 0 || len(body.Objects) > maxFetchObjects {
		return state.Errorf(state.Invalid, "objects: give 1 to %d digests, not %d", maxFetchObjects, len(body.Objects))
	}
	for i, sha := range body.Objects {
		if err := state.ValidateSHA256(sha); err != nil {
			return state.Errorf(state.Invalid, "objects[%d]: %v", i, err)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := s.opts.Bundles.WriteObjects(w, body.Objects); err != nil {
		if errors.Is(err, deploy.ErrNotFound) {
			return state.Errorf(state.NotFound, "%v", err)
		}
		return err
	}
	return nil
}

func (s *server) getBundleBytes(w http.ResponseWriter, r *http.Request) error {
	sha := chi.URLParam(r, "sha")
	if err := state.ValidateSHA256(sha); err != nil {
		return err
	}
	rc, size, err := s.opts.Bundles.Open(sha)
	if err != nil {
		return state.Errorf(state.NotFound, "bundle %s is not held by this node", sha)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	_, err = io.Copy(w, rc)
	return err
}

func (s *server) listBundles(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.records.ListBundles(r.Context(), chi.URLParam(r, "app"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, client.BundleList{Bundles: bs})
}

func (s *server) getBundle(w http.ResponseWriter, r *http.Request) error {
	b, err := s.records.GetBundle(r.Context(), chi.URLParam(r, "app"), chi.URLParam(r, "version"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b.Revision, b)
}

func (s *server) deleteBundle(w http.ResponseWriter, r *http.Request) error {
	app, version := chi.URLParam(r, "app"), chi.URLParam(r, "version")
	if err := s.records.DeleteBundle(r.Context(), app, version); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, map[string]string{"deleted": app + "@" + version})
}

// deployBody is the body of PUT /v1/sites/{domain}/deployment.
type deployBody struct {
	App      string `json:"app"`
	Version  string `json:"version"`
	Revision int64  `json:"revision,omitempty"`
}

func (s *server) deploy(w http.ResponseWriter, r *http.Request) error {
	domain, pre, err := siteTarget(r)
	if err != nil {
		return err
	}
	if err := checkSite(r.Context(), domain); err != nil {
		return err
	}
	var body deployBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.Revision != 0 {
		pre.IfMatch = body.Revision
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	site, err := s.deploys.Deploy(r.Context(), domain, body.App, body.Version, pre)
	if err != nil {
		return err
	}
	return s.answerDeployment(w, r, site, site.Domain, wait)
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request) error {
	domain, pre, err := siteTarget(r)
	if err != nil {
		return err
	}
	if err := checkSite(r.Context(), domain); err != nil {
		return err
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	site, err := s.deploys.Rollback(r.Context(), domain, pre)
	if err != nil {
		return err
	}
	return s.answerDeployment(w, r, site, site.Domain, wait)
}

// answerDeployment answers a deployment change, after waiting for the
// fleet to serve it when asked to: host, the site's domain or a preview's
// host, is the one whose errors count. A wait that ends at the deadline
// answers 202 with each node's state.
func (s *server) answerDeployment(w http.ResponseWriter, r *http.Request, site state.Site, host string, wait time.Duration) error {
	res := client.DeployResult{Site: site}
	if !canSeeHashes(r) {
		res.Site = withoutHashes(site)
	}
	code := http.StatusOK
	if wait > 0 && s.opts.Waiter != nil {
		extendDeadline(w, wait+s.opts.RequestTimeout)
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		st, err := s.opts.Waiter.WaitDeployed(ctx, host, site.Revision)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		res.Wait = &st
		if !st.Done {
			code = http.StatusAccepted
		}
	}
	w.Header().Set("ETag", etag(site.Revision))
	return writeJSON(w, code, site.Revision, res)
}

func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxWait {
		return 0, httpError(http.StatusBadRequest, "wait must be a duration between 0s and %s, e.g. 30s", MaxWait)
	}
	return d, nil
}
