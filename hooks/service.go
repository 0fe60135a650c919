package hooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// Service adds, lists and removes hooks and reads the delivery log, for
// the API. Secrets are sealed with the cluster key before they reach etcd
// and never leave the service again.
type Service struct {
	Store  *state.Store
	Sealer *sftls.Sealer
}

// Limits of what a hook may hold.
const (
	maxURL          = 2048
	minSecret       = 16
	maxSecret       = 256
	DefaultLogLimit = 100
	MaxLogLimit     = 1000
)

// AddHook validates and stores a hook. With secret empty it makes one. It
// returns the hook (without its secret) and the secret.
func (s *Service) AddHook(ctx context.Context, rawURL string, events []string, secret, createdBy string) (model.Hook, string, error) {
	if err := ValidateURL(rawURL); err != nil {
		return model.Hook{}, "", state.Errorf(state.Invalid, "url: %s", err)
	}
	if len(events) == 0 {
		return model.Hook{}, "", state.Errorf(state.Invalid, "events: name at least one of %s", strings.Join(model.HookEventTypes, ", "))
	}
	var evs []string
	for _, e := range events {
		if !slices.Contains(model.HookEventTypes, e) {
			return model.Hook{}, "", state.Errorf(state.Invalid, "event %.80q: must be one of %s", e, strings.Join(model.HookEventTypes, ", "))
		}
		if !slices.Contains(evs, e) {
			evs = append(evs, e)
		}
	}
	if secret == "" {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return model.Hook{}, "", fmt.Errorf("make a secret: %w", err)
		}
		secret = "whsec_" + base64.RawURLEncoding.EncodeToString(raw)
	} else if len(secret) < minSecret || len(secret) > maxSecret || strings.IndexFunc(secret, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' }) >= 0 {
		return model.Hook{}, "", state.Errorf(state.Invalid, "secret: %d to %d printable ASCII characters without spaces", minSecret, maxSecret)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return model.Hook{}, "", fmt.Errorf("make a hook ID: %w", err)
	}
	h := model.Hook{ID: "hook_" + hex.EncodeToString(id), URL: rawURL, Events: evs, CreatedAt: time.Now().UTC(), CreatedBy: createdBy}
	sealed, err := s.Sealer.Seal([]byte(secret), SecretContext(h.ID))
	if err != nil {
		return model.Hook{}, "", err
	}
	h.Secret = sealed
	if err := s.Store.AddHook(ctx, h); err != nil {
		return model.Hook{}, "", err
	}
	h.Secret = ""
	return h, secret, nil
}

// ValidateURL accepts an absolute http or https URL with a host and no
// credentials or fragment.
func ValidateURL(raw string) error {
	if len(raw) > maxURL {
		return fmt.Errorf("longer than %d bytes", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%.80q is not a URL", raw)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%.80q: want an http or https URL", raw)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%.80q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("%.80q carries credentials: put them in the secret's place, not the URL", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%.80q has a fragment", raw)
	case strings.ContainsAny(raw, " \t\r\n"):
		return fmt.Errorf("%.80q holds white space", raw)
	}
	return nil
}

// Hooks lists the hooks, without their secrets.
func (s *Service) Hooks(ctx context.Context) ([]model.Hook, error) {
	hooks, err := s.Store.ListHooks(ctx)
	for i := range hooks {
		hooks[i].Secret = ""
	}
	return hooks, err
}

var hookIDRE = func(id string) bool {
	rest, ok := strings.CutPrefix(id, "hook_")
	if !ok || len(rest) != 16 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil && strings.ToLower(rest) == rest
}

// RemoveHook removes a hook; deliveries still owed to it are dropped.
func (s *Service) RemoveHook(ctx context.Context, id string) error {
	if !hookIDRE(id) {
		return state.Errorf(state.Invalid, "%.80q is not a hook ID (hook_ and 16 hex digits; see sitefleet hook list)", id)
	}
	return s.Store.DeleteHook(ctx, id)
}

// HookLog returns the newest limit delivery attempts, oldest first.
func (s *Service) HookLog(ctx context.Context, limit int) ([]model.HookLogEntry, error) {
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	return s.Store.HookLog(ctx, min(limit, MaxLogLimit))
}
