package api

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// DefaultTokenRefresh is how often the fleet's token hashes are re-read.
const DefaultTokenRefresh = 10 * time.Second

// TokenSource lists the hashes of the tokens every node of the fleet accepts.
type TokenSource interface {
	TokenHashes(ctx context.Context) (map[string]bool, error)
}

// Auth checks bearer tokens. A token is accepted when its SHA-256 matches a
// token from this node's configuration (compared in constant time) or one
// of the fleet's token hashes kept in etcd. The fleet's hashes are cached
// and refreshed by Run, so authentication keeps working while etcd is down.
type Auth struct {
	static [][]byte // SHA-256 hashes, hex
	source TokenSource
	every  time.Duration
	log    *slog.Logger

	mu          sync.RWMutex
	fleet       map[string]bool
	lastRefresh atomic.Int64 // unix nanoseconds of the last refresh attempt
}

// missRefreshInterval is the least time between two refreshes caused by an
// unknown token, so a token created on another node a moment ago is accepted
// at once, and a flood of bad tokens cannot flood etcd.
const missRefreshInterval = time.Second

// NewAuth returns an Auth that accepts the given tokens, and those whose
// hashes source lists (source may be nil).
func NewAuth(tokens []string, source TokenSource, log *slog.Logger) *Auth {
	a := &Auth{source: source, every: DefaultTokenRefresh, log: log, fleet: map[string]bool{}}
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

// Run refreshes the fleet's token hashes until ctx ends. A failed refresh
// keeps the hashes read before.
func (a *Auth) Run(ctx context.Context) error {
	if a.source == nil {
		<-ctx.Done()
		return nil
	}
	for {
		a.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.every):
		}
	}
}

// Refresh re-reads the fleet's token hashes once.
func (a *Auth) Refresh(ctx context.Context) {
	if a.source == nil {
		return
	}
	a.lastRefresh.Store(time.Now().UnixNano())
	hashes, err := a.source.TokenHashes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Debug("could not refresh API tokens; keeping the known ones", "err", err)
		}
		return
	}
	a.mu.Lock()
	a.fleet = hashes
	a.mu.Unlock()
}

// Allowed reports whether token is accepted. A token that is not known
// makes Allowed re-read the fleet's hashes first, at most once a second.
func (a *Auth) Allowed(ctx context.Context, token string) bool {
	if a.known(token) {
		return true
	}
	last := a.lastRefresh.Load()
	if a.source == nil || time.Since(time.Unix(0, last)) < missRefreshInterval || !a.lastRefresh.CompareAndSwap(last, time.Now().UnixNano()) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	a.Refresh(ctx)
	return a.known(token)
}

// known reports whether token is accepted by what is known now.
func (a *Auth) known(token string) bool {
	if token == "" {
		return false
	}
	h := []byte(state.HashToken(token))
	ok := 0
	for _, s := range a.static {
		ok |= subtle.ConstantTimeCompare(h, s)
	}
	if ok == 1 {
		return true
	}
	// Looking the hash up leaks nothing about the token: finding a token
	// with a given hash prefix is as hard as breaking SHA-256.
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.fleet[string(h)]
}

// Middleware refuses requests without an accepted bearer token with 401.
func (a *Auth) Middleware(writeError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
			if !found || !strings.EqualFold(scheme, "Bearer") || !a.Allowed(r.Context(), strings.TrimSpace(token)) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sitefleet"`)
				writeError(w, r, httpError(http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
