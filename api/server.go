// Package api is sitefleet's REST API: a chi router with bearer-token
// authentication, JSON bodies, and errors as application/problem+json.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// DefaultMaxBodyBytes limits request bodies when Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 8 << 20

// Store is what the API needs of the state store.
type Store interface {
	SiteStore
	StateStore
	BundleRecords
	Deployer
	CertRecords
	Previewer
}

// SiteStore is what the site handlers need of the state store: one site
// at a time, and a Snapshot to list them.
type SiteStore interface {
	Snapshotter
	GetSite(ctx context.Context, domain string) (state.Site, int64, error)
	PutSite(ctx context.Context, site state.Site, pre state.Precondition) (state.Site, error)
	DeleteSite(ctx context.Context, domain string, pre state.Precondition) (int64, error)
}

// Snapshotter reads the whole desired state at one revision.
type Snapshotter interface {
	Snapshot(ctx context.Context) (*state.Snapshot, error)
}

// StateStore exports and imports the whole desired state.
type StateStore interface {
	Export(ctx context.Context) (state.Document, error)
	Import(ctx context.Context, doc state.Document, dryRun bool) (state.ImportResult, error)
}

// BundleRecords reads and removes the records of uploaded bundles.
type BundleRecords interface {
	GetBundle(ctx context.Context, app, version string) (state.Bundle, error)
	ListBundles(ctx context.Context, app string) ([]state.Bundle, error)
	DeleteBundle(ctx context.Context, app, version string, guard ...state.Guard) error
}

// Deployer deploys a bundle to a site and rolls a site back.
type Deployer interface {
	Deploy(ctx context.Context, domain, app, version string, pre state.Precondition) (state.Site, error)
	Rollback(ctx context.Context, domain string, pre state.Precondition) (state.Site, error)
}

// StatusSource reports this node's status and its view of the fleet.
type StatusSource interface {
	// NodeStatus is this node's status; it does not block.
	NodeStatus() client.NodeStatus
	// Preview reads the desired state and says what this node would
	// change to converge on it.
	Preview(ctx context.Context) (client.Preview, error)
	// Cluster reads every node's record from etcd.
	Cluster(ctx context.Context) (client.ClusterStatus, error)
}

// Options configure the API handler.
type Options struct {
	NodeName string
	Store    Store
	Status   StatusSource
	Auth     *Auth
	// MaxBodyBytes limits request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Bundles takes uploads and serves bundle bytes to peers; without it
	// those endpoints do not exist.
	Bundles Bundles
	// Waiter waits for the fleet to serve a deployment (?wait=).
	Waiter Waiter
	// Previews are the fleet's preview settings.
	Previews PreviewOptions
	// Certificates imports certificates; without it those endpoints do
	// not exist.
	Certificates Certificates
	// ACMEChallenge, when set, answers /.well-known/acme-challenge/ without
	// authentication: nginx passes those requests to the node.
	ACMEChallenge http.Handler
	// Metrics, when set, is served at /metrics (with authentication, like
	// everything but the health checks).
	Metrics http.Handler
	// RequestTimeout bounds how long a request's body may take to arrive
	// and its answer to leave (default DefaultRequestTimeout);
	// UploadTimeout does for uploads, commits and transfers between nodes
	// (default DefaultUploadTimeout).
	RequestTimeout, UploadTimeout time.Duration
	// MaxUploads bounds the uploads taken at once (default
	// DefaultMaxUploads); one more waits UploadQueueWait (default 10 s)
	// for a slot, then gets 503.
	MaxUploads      int
	UploadQueueWait time.Duration
	// Tokens, when set, creates, lists and revokes API tokens.
	Tokens TokenStore
	// Audit, when set, records every mutation and serves the record.
	Audit AuditLog
	// Hooks, when set, manages the fleet's webhooks.
	Hooks  HookService
	Logger *slog.Logger
}

// server holds the handlers' dependencies.
type server struct {
	opts Options
	log  *slog.Logger
	// The state store, as each handler group sees it.
	sites    SiteStore
	docs     StateStore
	records  BundleRecords
	deploys  Deployer
	certs    CertRecords
	previews Previewer
}

// NewHandler returns the API's http.Handler.
func NewHandler(opts Options) (http.Handler, error) {
	if opts.Store == nil || opts.Status == nil || opts.Auth == nil {
		return nil, errors.New("api: Store, Status and Auth are required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = DefaultUploadTimeout
	}
	uploads := newUploadSlots(opts.MaxUploads)
	if opts.UploadQueueWait > 0 {
		uploads.wait = opts.UploadQueueWait
	}
	s := &server{opts: opts, log: opts.Logger, sites: opts.Store, docs: opts.Store, records: opts.Store, deploys: opts.Store, certs: opts.Store, previews: opts.Store}
	r := chi.NewRouter()
	// Every request gets a deadline (the connection keeps the last one
	// set); uploads then get a longer one.
	r.Use(middleware.Recoverer, s.nodeHeader, deadline(opts.RequestTimeout), s.audit)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if opts.ACMEChallenge != nil {
		r.Handle("/.well-known/acme-challenge/*", opts.ACMEChallenge)
	}
	read, deploy, admin := require(model.PermRead, s.writeError), require(model.PermDeploy, s.writeError), require(model.PermAdmin, s.writeError)
	r.Group(func(r chi.Router) {
		r.Use(deadline(opts.UploadTimeout), opts.Auth.Middleware(s.writeError))
		if opts.Bundles != nil {
			// Streamed: the bundle intake enforces its own size limits.
			limited := r.With(deploy, uploads.middleware(s.writeError))
			limited.Put("/v1/apps/{app}/{version}", s.handle(s.uploadBundle))
			limited.Put("/v1/apps/{app}/{version}/tree", s.handle(s.putTree))
			limited.Post("/v1/objects", s.handle(s.putObjects))
			// It waits for the release to reach enough nodes.
			r.With(deploy, s.limitBody).Post("/v1/apps/{app}/{version}/commit", s.handle(s.commitRelease))
			// Between nodes.
			peer := r.With(require(model.PermPeer, s.writeError))
			peer.Get("/v1/bundles/{sha}", s.handle(s.getBundleBytes))
			peer.Get("/v1/objects/{sha}", s.handle(s.getObject))
			peer.Post("/v1/objects/fetch", s.handle(s.fetchObjects))
		}
	})
	r.Group(func(r chi.Router) {
		r.Use(opts.Auth.Middleware(s.writeError), s.limitBody)
		if opts.Metrics != nil {
			r.With(read).Handle("/metrics", opts.Metrics)
		}
		r.With(read).Get("/v1/apps", s.handle(s.listBundles))
		r.With(read).Get("/v1/apps/{app}", s.handle(s.listBundles))
		r.With(read).Get("/v1/apps/{app}/{version}", s.handle(s.getBundle))
		r.With(admin).Delete("/v1/apps/{app}/{version}", s.handle(s.deleteBundle))
		r.With(deploy).Put("/v1/sites/{domain}/deployment", s.handle(s.deploy))
		r.With(deploy).Post("/v1/sites/{domain}/rollback", s.handle(s.rollback))
		r.With(deploy).Put("/v1/sites/{domain}/previews/{name}", s.handle(s.putPreview))
		r.With(deploy).Delete("/v1/sites/{domain}/previews/{name}", s.handle(s.deletePreview))
		r.With(deploy).Post("/v1/sites/{domain}/previews/{name}/promote", s.handle(s.promotePreview))
		if opts.Certificates != nil {
			r.With(read).Get("/v1/certificates", s.handle(s.listCertificates))
			r.With(admin).Post("/v1/certificates", s.handle(s.importCertificate))
			r.With(read).Get("/v1/certificates/{id}", s.handle(s.getCertificate))
			r.With(admin).Delete("/v1/certificates/{id}", s.handle(s.deleteCertificate))
		}
		r.With(read).Get("/v1/status", s.handle(s.getStatus))
		r.With(read).Get("/v1/status/preview", s.handle(s.getPreview))
		r.With(read).Get("/v1/cluster", s.handle(s.getCluster))
		r.With(read).Get("/v1/sites", s.handle(s.listSites))
		r.With(read).Get("/v1/sites/{domain}", s.handle(s.getSite))
		r.With(admin).Put("/v1/sites/{domain}", s.handle(s.putSite))
		r.With(admin).Delete("/v1/sites/{domain}", s.handle(s.deleteSite))
		r.With(admin).Get("/v1/state", s.handle(s.getState))
		r.With(admin).Put("/v1/state", s.handle(s.putState))
		if opts.Tokens != nil {
			r.With(admin).Post("/v1/tokens", s.handle(s.createToken))
			r.With(admin).Get("/v1/tokens", s.handle(s.listTokens))
			r.With(admin).Delete("/v1/tokens/{id}", s.handle(s.revokeToken))
		}
		if opts.Audit != nil {
			r.With(admin).Get("/v1/audit", s.handle(s.listAudit))
		}
		if opts.Hooks != nil {
			r.With(admin).Post("/v1/hooks", s.handle(s.addHook))
			r.With(admin).Get("/v1/hooks", s.handle(s.listHooks))
			r.With(admin).Get("/v1/hooks/log", s.handle(s.hookLog))
			r.With(admin).Delete("/v1/hooks/{id}", s.handle(s.removeHook))
		}
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, httpError(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, httpError(http.StatusMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
	})
	return r, nil
}

// handlerFunc is a handler that returns its error; handle writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *server) nodeHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(client.HeaderNode, s.opts.NodeName)
		next.ServeHTTP(w, r)
	})
}

func (s *server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// statusError is an error with an HTTP status and a message for the client.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func httpError(status int, format string, args ...any) error {
	return &statusError{status: status, msg: fmt.Sprintf(format, args...)}
}

var codeStatus = map[state.Code]int{
	state.Invalid:     http.StatusUnprocessableEntity,
	state.NotFound:    http.StatusNotFound,
	state.Conflict:    http.StatusPreconditionFailed,
	state.NameTaken:   http.StatusConflict,
	state.Exists:      http.StatusConflict,
	state.Busy:        http.StatusConflict,
	state.InUse:       http.StatusConflict,
	state.TooLarge:    http.StatusRequestEntityTooLarge,
	state.Unavailable: http.StatusServiceUnavailable,
}

// writeError is the one place that turns an error into an HTTP answer.
// Internal errors are logged and shown to the client only as such.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := client.Problem{Node: s.opts.NodeName}
	var se *statusError
	var ste *state.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &se):
		p.Status, p.Detail = se.status, se.msg
	case errors.As(err, &mbe):
		p.Status, p.Detail = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &ste) && codeStatus[ste.Code] != 0:
		p.Status, p.Detail, p.Code = codeStatus[ste.Code], ste.Message, string(ste.Code)
		if ste.Code == state.Unavailable {
			w.Header().Set("Retry-After", "5")
		}
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p.Status, p.Detail = http.StatusInternalServerError, "internal error; see the node's log"
	}
	p.Title = http.StatusText(p.Status)
	if rec, ok := r.Context().Value(auditKey{}).(*auditEntry); ok {
		rec.err = p.Detail
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes v with the given status and revision header.
func writeJSON(w http.ResponseWriter, status int, rev int64, v any) error {
	if rev > 0 {
		w.Header().Set(client.HeaderRevision, strconv.FormatInt(rev, 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decodeJSON decodes one JSON value from the body, refusing unknown fields
// and trailing data.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return httpError(http.StatusBadRequest, "request body is not valid JSON for this endpoint: %v", err)
	}
	if dec.More() {
		return httpError(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz is 200 while nginx serves an applied state, even a stale one
// while etcd is unreachable (serving it is the point), and 503 before the
// first apply or while nginx is down.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	st := s.opts.Status.NodeStatus()
	body := map[string]any{"ready": st.Ready, "appliedRevision": st.AppliedRevision, "stale": st.Stale, "nginxRunning": st.Nginx.Running}
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
		body["reason"] = notReadyReason(st)
	}
	_ = writeJSON(w, code, st.AppliedRevision, body)
}

func notReadyReason(st client.NodeStatus) string {
	switch {
	case st.Draining:
		return "draining: the node is stopping and still serves while balancers take it out of rotation"
	case st.AppliedAt == nil:
		return "no state applied yet"
	case !st.Nginx.Running:
		return "nginx is not running"
	}
	return "not ready"
}

func (s *server) getStatus(w http.ResponseWriter, r *http.Request) error {
	st := s.opts.Status.NodeStatus()
	return writeJSON(w, http.StatusOK, st.AppliedRevision, st)
}

func (s *server) getPreview(w http.ResponseWriter, r *http.Request) error {
	p, err := s.opts.Status.Preview(r.Context())
	if err != nil {
		return err
	}
	p.Node = s.opts.NodeName
	return writeJSON(w, http.StatusOK, p.DesiredRevision, p)
}

func (s *server) getCluster(w http.ResponseWriter, r *http.Request) error {
	c, err := s.opts.Status.Cluster(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c.StateRevision, c)
}
