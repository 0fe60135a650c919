package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
)

// AuditStore keeps the audit trail.
type AuditStore interface {
	AppendAudit(ctx context.Context, entries []model.AuditEntry) error
	ListAudit(ctx context.Context, since time.Time, limit int) ([]model.AuditEntry, error)
}

// AuditLog records the API's changes and reads them back.
type AuditLog interface {
	// Record queues e; it never blocks.
	Record(e model.AuditEntry)
	ListAudit(ctx context.Context, since time.Time, limit int) ([]model.AuditEntry, error)
}

// auditQueue is how many entries may wait to be written; past it entries
// are dropped (and counted) rather than slowing the API.
const auditQueue = 4096

// Auditor writes the entries the API records to an AuditStore in the
// background, in batches.
type Auditor struct {
	store   AuditStore
	queue   chan model.AuditEntry
	dropped atomic.Int64
	log     *slog.Logger
}

// NewAuditor returns an Auditor writing to store; Run must run.
func NewAuditor(store AuditStore, log *slog.Logger) *Auditor {
	if log == nil {
		log = slog.Default()
	}
	return &Auditor{store: store, queue: make(chan model.AuditEntry, auditQueue), log: log}
}

// Record queues e to be written.
func (a *Auditor) Record(e model.AuditEntry) {
	select {
	case a.queue <- e:
	default:
		if a.dropped.Add(1)%100 == 1 {
			a.log.Warn("the audit trail cannot keep up; entries are dropped", "dropped", a.dropped.Load())
		}
	}
}

// Dropped returns how many entries were dropped.
func (a *Auditor) Dropped() int64 { return a.dropped.Load() }

// ListAudit reads the trail.
func (a *Auditor) ListAudit(ctx context.Context, since time.Time, limit int) ([]model.AuditEntry, error) {
	return a.store.ListAudit(ctx, since, limit)
}

// Run writes queued entries until ctx ends, then what is still queued
// (for a few seconds). A failed write is retried with the next batch.
func (a *Auditor) Run(ctx context.Context) error {
	var batch []model.AuditEntry
	write := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if err := a.store.AppendAudit(ctx, batch); err != nil {
			if len(batch) < auditQueue {
				a.log.Debug("could not write audit entries; retrying", "entries", len(batch), "err", err)
				return
			}
			a.log.Warn("could not write audit entries; dropping them", "entries", len(batch), "err", err)
			a.dropped.Add(int64(len(batch)))
		}
		batch = batch[:0]
	}
	// take moves queued entries into the batch, up to max of them.
	take := func(max int) {
		for len(batch) < max {
			select {
			case e := <-a.queue:
				batch = append(batch, e)
			default:
				return
			}
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case e := <-a.queue:
			batch = append(batch, e)
			take(64)
			write(ctx)
		case <-t.C:
			write(ctx)
		case <-ctx.Done():
			take(auditQueue)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			write(fctx)
			cancel()
			return nil
		}
	}
}

type auditKey struct{}

// auditEntry is filled in as a request passes: the principal by the
// authentication, the error by writeError.
type auditEntry struct {
	principal model.Token
	err       string
}

// audit records every authenticated request that may change something
// (any method but GET, HEAD and OPTIONS): token, source, action, target
// and result. Requests refused before authentication are not recorded:
// anyone could fill the trail with them.
func (s *server) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Audit == nil || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		rec := &auditEntry{}
		sw := middleware.NewWrapResponseWriter(w, r.ProtoMajor) // it unwraps for http.ResponseController
		start := time.Now().UTC()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), auditKey{}, rec)))
		if rec.principal.ID == "" {
			return
		}
		action, target := r.Method+" "+r.URL.Path, ""
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			action = r.Method + " " + rc.RoutePattern()
			var parts []string
			for i, k := range rc.URLParams.Keys {
				if k != "*" && i < len(rc.URLParams.Values) {
					parts = append(parts, k+"="+rc.URLParams.Values[i])
				}
			}
			target = strings.Join(parts, " ")
		}
		source := r.RemoteAddr
		if host, _, err := net.SplitHostPort(source); err == nil {
			source = host
		}
		status := sw.Status()
		if status == 0 {
			status = http.StatusOK
		}
		if secretBodies[action] && rec.err != "" {
			// Its problem may quote what was sent, a private key included.
			rec.err = http.StatusText(status)
		}
		if len(rec.err) > maxAuditError {
			rec.err = strings.ToValidUTF8(rec.err[:maxAuditError], "") + "..."
		}
		s.opts.Audit.Record(model.AuditEntry{
			Time: start, Node: s.opts.NodeName, TokenID: rec.principal.ID, Role: rec.principal.RoleOf(),
			Source: source, Action: action, Target: target, Status: status, Error: rec.err,
		})
	})
}

// secretBodies are the actions whose request bodies may hold secrets:
// their problems are recorded by status only.
var secretBodies = map[string]bool{
	"POST /v1/certificates": true,
	"PUT /v1/state":         true,
}

// maxAuditError bounds the problem detail an entry keeps.
const maxAuditError = 500

// maxAuditList bounds one read of the audit trail.
const maxAuditList = 10000

func (s *server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return httpError(http.StatusBadRequest, "since must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
		}
		since = t
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditList {
			return httpError(http.StatusBadRequest, "limit must be a number from 1 to %d", maxAuditList)
		}
		limit = n
	}
	entries, err := s.opts.Audit.ListAudit(r.Context(), since, limit)
	if err != nil {
		return fmt.Errorf("read the audit trail: %w", err)
	}
	return writeJSON(w, http.StatusOK, 0, client.AuditList{Entries: entries})
}
