package tls

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/time/rate"

	"github.com/sitefleet/sitefleet/state"
)

// challengePrefix is the path of ACME HTTP-01 challenges (RFC 8555 8.3).
const challengePrefix = "/.well-known/acme-challenge/"

// Challenge reads, per second, at most challengeReads key authorizations
// from the state store (with bursts of challengeBurst): nginx passes every
// host's challenge path to the node, and a CA validates a name with a few
// requests.
const (
	challengeReads = 20
	challengeBurst = 40
	// challengeTimeout bounds one read of the state store.
	challengeTimeout = 5 * time.Second
)

// ChallengeHandler answers ACME HTTP-01 challenges on any node from the
// key authorizations the leader keeps in the state store (sealed). It
// reads the store only for a well-formed token on a host that a site
// using ACME names (known from snaps, the node's copy of the state), and
// at most challengeReads times a second; anything else is 404 without a
// read. Its answers never carry internal errors.
func ChallengeHandler(store *state.Store, sealer *Sealer, snaps Snapshots, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return &challengeHandler{
		cache: &stateCache{store: store, sealer: sealer},
		hosts: &acmeHosts{snaps: snaps},
		limit: rate.NewLimiter(challengeReads, challengeBurst),
		log:   log,
	}
}

type challengeHandler struct {
	cache autocert.Cache
	hosts *acmeHosts
	limit *rate.Limiter
	log   *slog.Logger
}

func (h *challengeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token, ok := strings.CutPrefix(r.URL.Path, challengePrefix)
	if !ok || !validChallengeToken(token) || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "no such challenge", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), challengeTimeout)
	defer cancel()
	if !h.hosts.has(ctx, requestHost(r.Host)) {
		http.Error(w, "no such challenge", http.StatusNotFound)
		return
	}
	if !h.limit.Allow() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many challenge requests; retry in a second", http.StatusTooManyRequests)
		return
	}
	data, err := h.cache.Get(ctx, token+"+http-01")
	switch {
	case errors.Is(err, autocert.ErrCacheMiss):
		http.Error(w, "no such challenge", http.StatusNotFound)
		return
	case err != nil:
		h.log.Warn("could not read an ACME challenge", "host", requestHost(r.Host), "err", err)
		http.Error(w, "the challenge cannot be read right now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(data)
}

// validChallengeToken reports whether t can be an ACME token: base64url
// characters (RFC 8555 8.1), at least 128 bits' worth, bounded in length.
func validChallengeToken(t string) bool {
	if len(t) < 22 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// requestHost returns r.Host without a port or a final dot, in lower case.
func requestHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// acmeHosts is the set of names of the sites that use ACME, built again
// only when the state copy changes (and only when a challenge asks).
type acmeHosts struct {
	snaps Snapshots

	mu    sync.Mutex
	from  *state.Snapshot
	names map[string]bool
}

// has reports whether a site that uses ACME names host. Without a copy of
// the state it knows no host.
func (a *acmeHosts) has(ctx context.Context, host string) bool {
	if a.snaps == nil {
		return false
	}
	snap, err := a.snaps.Snapshot(ctx)
	if err != nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if snap != a.from {
		a.names = map[string]bool{}
		for _, s := range snap.Sites {
			if s.ModeOf() == state.TLSACME {
				for _, n := range s.Names() {
					a.names[n] = true
				}
			}
		}
		a.from = snap
	}
	return a.names[host]
}
