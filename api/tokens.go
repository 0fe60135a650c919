package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// TokenStore creates, lists and revokes the fleet's API tokens.
type TokenStore interface {
	CreateToken(ctx context.Context, hash string, t model.Token) error
	Tokens(ctx context.Context) ([]model.Token, error)
	RevokeToken(ctx context.Context, id string) error
}

// maxTokenLife bounds a token's expiry.
const maxTokenLife = 10 * 365 * 24 * time.Hour

var tokenIDRE = regexp.MustCompile(`^tok_[0-9a-f]{16}$`)

func (s *server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req client.TokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if !slices.Contains(model.Roles, req.Role) {
		return state.Errorf(state.Invalid, "role %q: must be one of read, deploy, admin", req.Role)
	}
	if len(req.Sites) > 0 && req.Role != model.RoleDeploy {
		return state.Errorf(state.Invalid, "sites limit deploy tokens only; a %s token's reach is its role", req.Role)
	}
	if len(req.Sites) > 100 {
		return state.Errorf(state.Invalid, "at most 100 site patterns")
	}
	for _, p := range req.Sites {
		if err := model.ValidateSitePattern(p); err != nil {
			return state.Errorf(state.Invalid, "%s", err)
		}
	}
	if len(req.Label) > 200 || strings.IndexFunc(req.Label, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return state.Errorf(state.Invalid, "label: at most 200 printable characters")
	}
	now := time.Now().UTC()
	t := model.Token{Role: req.Role, Sites: req.Sites, Label: req.Label, CreatedAt: now}
	if req.Expires != "" {
		d, err := parseLifetime(req.Expires)
		if err != nil {
			return state.Errorf(state.Invalid, "expires %q: %s", req.Expires, err)
		}
		at := now.Add(d)
		t.ExpiresAt = &at
	}
	if p, ok := PrincipalFrom(r.Context()); ok {
		t.Creator = p.ID
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("make a token: %w", err)
	}
	token := "sft_" + base64.RawURLEncoding.EncodeToString(raw)
	hash := state.HashToken(token)
	if err := s.opts.Tokens.CreateToken(r.Context(), hash, t); err != nil {
		return err
	}
	t.ID = model.TokenID(hash)
	s.opts.Auth.Refresh(r.Context())
	return writeJSON(w, http.StatusCreated, 0, client.CreatedToken{Secret: token, Token: t})
}

// parseLifetime parses a Go duration or a number of days ("30d"),
// positive and at most maxTokenLife.
func parseLifetime(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 720h or 30d")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("want a duration such as 720h or 30d")
		}
	}
	if d <= 0 || d > maxTokenLife {
		return 0, fmt.Errorf("must be positive and at most %d days", int(maxTokenLife.Hours()/24))
	}
	return d, nil
}

func (s *server) listTokens(w http.ResponseWriter, r *http.Request) error {
	l, err := s.opts.Tokens.Tokens(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, client.TokenList{Tokens: l})
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	if !tokenIDRE.MatchString(id) {
		return state.Errorf(state.Invalid, "%.80q is not a token ID (tok_ and 16 hex digits; see sitefleet token list)", id)
	}
	if err := s.opts.Tokens.RevokeToken(r.Context(), id); err != nil {
		return err
	}
	s.opts.Auth.Refresh(r.Context())
	w.WriteHeader(http.StatusNoContent)
	return nil
}
