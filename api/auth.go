package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// DefaultTokenRefresh is how often the fleet's tokens are re-read even
// when no change is signalled.
const DefaultTokenRefresh = 10 * time.Second

// usageFlush is how often the nodes note in etcd which tokens were used:
// "last used" is that fresh, and an idle fleet writes nothing.
const usageFlush = 5 * time.Minute

// TokenSource lists every credential the fleet accepts, by the SHA-256 of
// its token.
type TokenSource interface {
	Principals(ctx context.Context) (map[string]model.Token, error)
}

// TokenWatcher, when a TokenSource also is one, signals changes to the
// tokens, so that a revoked token is refused at once.
type TokenWatcher interface {
	WatchAuth(ctx context.Context) <-chan struct{}
}

// UsageRecorder, when a TokenSource also is one, keeps when each token
// was last used.
type UsageRecorder interface {
	NoteTokensUsed(ctx context.Context, used map[string]time.Time) error
}

// Auth checks bearer tokens and says what each may do. A token is
// accepted when its SHA-256 matches a token from this node's
// configuration (compared in constant time; admin) or one of the fleet's
// credentials kept in etcd (with their roles, site patterns and expiry).
// The fleet's credentials are cached, refreshed on every change Run sees
// and every DefaultTokenRefresh, so authentication keeps working while
// etcd is down.
type Auth struct {
	static [][]byte // SHA-256 hashes, hex
	source TokenSource
	every  time.Duration
	log    *slog.Logger

	mu          sync.RWMutex
	fleet       map[string]model.Token
	lastRefresh atomic.Int64 // unix nanoseconds of the last refresh attempt

	usedMu sync.Mutex
	used   map[string]time.Time // by token ID, since the last flush
}

// missRefreshInterval is the least time between two refreshes caused by an
// unknown token, so a token created on another node a moment ago is accepted
// at once, and a flood of bad tokens cannot flood etcd.
const missRefreshInterval = time.Second

// NewAuth returns an Auth that accepts the given tokens as admin tokens,
// and the credentials source lists (source may be nil).
func NewAuth(tokens []string, source TokenSource, log *slog.Logger) *Auth {
	a := &Auth{source: source, every: DefaultTokenRefresh, log: log, fleet: map[string]model.Token{}, used: map[string]time.Time{}}
	if a.log == nil {
		a.log = slog.Default()
	}
	for _, t := range tokens {
		if t != "" {
			a.static = append(a.static, []byte(state.HashToken(t)))
		}
	}
	return a
}

// Run refreshes the fleet's credentials until ctx ends: at each change
// the source signals, and every DefaultTokenRefresh. It also notes which
// tokens were used. A failed refresh keeps the credentials read before.
func (a *Auth) Run(ctx context.Context) error {
	if a.source == nil {
		<-ctx.Done()
		return nil
	}
	var changes <-chan struct{}
	if w, ok := a.source.(TokenWatcher); ok {
		changes = w.WatchAuth(ctx)
	}
	refresh := time.NewTicker(a.every)
	defer refresh.Stop()
	flush := time.NewTicker(usageFlush)
	defer flush.Stop()
	a.Refresh(ctx)
	for {
		select {
		case <-ctx.Done():
			a.flushUsage(context.WithoutCancel(ctx))
			return nil
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			a.Refresh(ctx)
		case <-refresh.C:
			a.Refresh(ctx)
		case <-flush.C:
			a.flushUsage(ctx)
		}
	}
}

// Refresh re-reads the fleet's credentials once.
func (a *Auth) Refresh(ctx context.Context) {
	if a.source == nil {
		return
	}
	a.lastRefresh.Store(time.Now().UnixNano())
	tokens, err := a.source.Principals(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Debug("could not refresh API tokens; keeping the known ones", "err", err)
		}
		return
	}
	a.mu.Lock()
	a.fleet = tokens
	a.mu.Unlock()
}

// flushUsage writes which tokens were used since the last flush.
func (a *Auth) flushUsage(ctx context.Context) {
	rec, ok := a.source.(UsageRecorder)
	if !ok {
		return
	}
	a.usedMu.Lock()
	used := a.used
	a.used = map[string]time.Time{}
	a.usedMu.Unlock()
	if len(used) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rec.NoteTokensUsed(ctx, used); err != nil {
		a.log.Debug("could not note which tokens were used", "err", err)
	}
}

// authResult is why a token was refused, or the principal it stands for.
type authResult struct {
	principal model.Token
	refusal   string // "" when accepted
}

// Authenticate returns what token may do, or why it is refused. A token
// that is not known makes it re-read the fleet's credentials first, at
// most once a second.
func (a *Auth) Authenticate(ctx context.Context, token string) (model.Token, error) {
	r := a.lookup(token)
	if r.refusal == "unknown" && a.source != nil {
		last := a.lastRefresh.Load()
		if time.Since(time.Unix(0, last)) >= missRefreshInterval && a.lastRefresh.CompareAndSwap(last, time.Now().UnixNano()) {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			a.Refresh(rctx)
			cancel()
			r = a.lookup(token)
		}
	}
	switch r.refusal {
	case "":
		a.noteUsed(r.principal.ID)
		return r.principal, nil
	case "unknown":
		return model.Token{}, httpError(http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
	default:
		return model.Token{}, httpError(http.StatusUnauthorized, "%s", r.refusal)
	}
}

func (a *Auth) noteUsed(id string) {
	if !strings.HasPrefix(id, "tok_") {
		return
	}
	a.usedMu.Lock()
	a.used[id] = time.Now()
	a.usedMu.Unlock()
}

// lookup resolves token with what is known now.
func (a *Auth) lookup(token string) authResult {
	if token == "" {
		return authResult{refusal: "unknown"}
	}
	hash := state.HashToken(token)
	h := []byte(hash)
	ok := 0
	for _, s := range a.static {
		ok |= subtle.ConstantTimeCompare(h, s)
	}
	// Looking the hash up leaks nothing about the token: finding a token
	// with a given hash prefix is as hard as breaking SHA-256.
	a.mu.RLock()
	t, known := a.fleet[hash]
	a.mu.RUnlock()
	switch {
	case ok == 1:
		// A configured token is an admin token, whatever etcd says.
		return authResult{principal: model.Token{ID: model.TokenID(hash), Role: model.RoleAdmin, Label: t.Label}}
	case !known:
		return authResult{refusal: "unknown"}
	case t.Expired(time.Now()):
		return authResult{refusal: fmt.Sprintf("token %s expired at %s", t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	t.Role = t.RoleOf()
	return authResult{principal: t}
}

type principalKey struct{}

// PrincipalFrom returns the token a request was authenticated with.
func PrincipalFrom(ctx context.Context) (model.Token, bool) {
	t, ok := ctx.Value(principalKey{}).(model.Token)
	return t, ok
}

// Middleware refuses requests without an accepted bearer token with 401,
// and passes the token's principal on in the request's context.
func (a *Auth) Middleware(writeError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
			var p model.Token
			err := httpError(http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
			if found && strings.EqualFold(scheme, "Bearer") {
				p, err = a.Authenticate(r.Context(), strings.TrimSpace(token))
			}
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sitefleet"`)
				writeError(w, r, err)
				return
			}
			if rec, ok := r.Context().Value(auditKey{}).(*auditEntry); ok {
				rec.principal = p
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		})
	}
}

// require refuses, with 403 naming what is missing, a request whose token
// lacks permission p.
func require(p model.Permission, writeError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t, _ := PrincipalFrom(r.Context())
			if !t.RoleOf().Allows(p) || t.ID == "" {
				writeError(w, r, httpError(http.StatusForbidden, "token %s (role %s) lacks the %q permission that %s %s needs", t.ID, t.RoleOf(), p, r.Method, r.URL.Path))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// checkSite refuses, with 403, a change to domain by a token whose site
// patterns do not cover it.
func checkSite(ctx context.Context, domain string) error {
	t, _ := PrincipalFrom(ctx)
	if t.AllowsSite(domain) {
		return nil
	}
	return httpError(http.StatusForbidden, "token %s may change only the sites matching %s, not %q", t.ID, strings.Join(t.Sites, ", "), domain)
}
