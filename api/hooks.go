package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
)

// HookService adds, lists and removes the fleet's webhooks and reads
// their delivery log (package hooks).
type HookService interface {
	AddHook(ctx context.Context, url string, events []string, secret, createdBy string) (model.Hook, string, error)
	Hooks(ctx context.Context) ([]model.Hook, error)
	RemoveHook(ctx context.Context, id string) error
	HookLog(ctx context.Context, limit int) ([]model.HookLogEntry, error)
}

// maxHookLog bounds GET /v1/hooks/log?limit.
const maxHookLog = 1000

func (s *server) addHook(w http.ResponseWriter, r *http.Request) error {
	var req client.HookRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var creator string
	if p, ok := PrincipalFrom(r.Context()); ok {
		creator = p.ID
	}
	h, secret, err := s.opts.Hooks.AddHook(r.Context(), req.URL, req.Events, req.Secret, creator)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, 0, client.CreatedHook{Hook: h, Secret: secret})
}

func (s *server) listHooks(w http.ResponseWriter, r *http.Request) error {
	hooks, err := s.opts.Hooks.Hooks(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, client.HookList{Hooks: hooks})
}

func (s *server) removeHook(w http.ResponseWriter, r *http.Request) error {
	if err := s.opts.Hooks.RemoveHook(r.Context(), chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) hookLog(w http.ResponseWriter, r *http.Request) error {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHookLog {
			return httpError(http.StatusBadRequest, "limit must be a number from 1 to %d", maxHookLog)
		}
		limit = n
	}
	entries, err := s.opts.Hooks.HookLog(r.Context(), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, client.HookLog{Entries: entries})
}
