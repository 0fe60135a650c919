// Package protect answers nginx's auth subrequests for protected sites:
// whether a request may be served, given the host, the path and the
// client's basic-authentication credentials.
//
// Passwords are checked here rather than in nginx: a bcrypt check takes
// tens of milliseconds, which would stall an nginx worker and every
// request it holds. Every check that is not a remembered success costs
// exactly one bcrypt comparison at the site's cost, whether or not the
// user exists, so the answer's timing does not tell which users do.
// Successes are remembered (by a hash of host, user, password and the
// user's record) for a while, so a logged-in visitor costs a map lookup
// per request.
package protect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Login is one user allowed on a path: with a bcrypt Hash (a site's
// users), or a clear Password (a bundle's Basic-Auth lines).
type Login struct {
	User     string
	Hash     string
	Password string
}

// Gate is what guards one host.
type Gate struct {
	// Realm names the site in the challenge.
	Realm string
	// Cost is the bcrypt cost that a check of a user who does not exist,
	// or has a clear password, spends (the cost of the site's hashes).
	Cost int
	// Logins returns who may request path (decoded, normalised, with its
	// leading "/"); none means the path is open.
	Logins func(path string) []Login
}

// Gates finds the gate of a host; false for a host nothing serves.
type Gates func(host string) (Gate, bool)

// Options configure a Checker.
type Options struct {
	Gates Gates
	// HostHeader and URIHeader name the headers nginx sends the host
	// and the request target in.
	HostHeader, URIHeader string
	// Remember is how long a success is remembered (default 10 minutes);
	// MaxRemembered bounds how many are (default 10,000).
	Remember      time.Duration
	MaxRemembered int
	// Parallel bounds concurrent bcrypt checks (default GOMAXPROCS); a
	// check that waits longer than Wait (default 5s) answers 503.
	Parallel int
	Wait     time.Duration
	Logger   *slog.Logger
}

// Checker is the http.Handler nginx's auth subrequests reach.
type Checker struct {
	opts Options
	sem  chan struct{}
	// compare is bcrypt.CompareHashAndPassword (a test counts its calls).
	compare func(hash, password []byte) error

	mu      sync.Mutex
	ok      map[[32]byte]time.Time // remembered successes, until when
	dummies map[int][]byte         // a hash per cost, for checks without a user
}

// New returns a Checker.
func New(o Options) *Checker {
	if o.Remember <= 0 {
		o.Remember = 10 * time.Minute
	}
	if o.MaxRemembered <= 0 {
		o.MaxRemembered = 10000
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.GOMAXPROCS(0)
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{opts: o, sem: make(chan struct{}, o.Parallel), compare: bcrypt.CompareHashAndPassword, ok: map[[32]byte]time.Time{}, dummies: map[int][]byte{}}
}

// ServeHTTP answers 204 when the request may be served, 401 with a
// challenge when it needs other credentials, 403 for a target that does
// not decode, and 503 when checks are backed up.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Header.Get(c.opts.HostHeader)
	gate, ok := c.opts.Gates(host)
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	p, err := NormalizePath(r.Header.Get(c.opts.URIHeader))
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	logins := gate.Logins(p)
	if len(logins) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	user, pass, ok := basicAuth(r)
	if ok {
		ok, err = c.check(r.Context(), gate, logins, host, user, pass)
		if err != nil {
			c.opts.Logger.Warn("login checks are backed up", "host", host, "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", gate.Realm))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// check reports whether user and pass are one of logins.
func (c *Checker) check(ctx context.Context, gate Gate, logins []Login, host, user, pass string) (bool, error) {
	var login *Login
	for i := range logins {
		if logins[i].User == user {
			login = &logins[i]
			break
		}
	}
	var key [32]byte
	if login != nil {
		key = sha256.Sum256([]byte(host + "\x00" + user + "\x00" + pass + "\x00" + login.Hash + "\x00" + login.Password))
		if c.remembered(key) {
			return true, nil
		}
	}
	wctx, cancel := context.WithTimeout(ctx, c.opts.Wait)
	defer cancel()
	select {
	case c.sem <- struct{}{}:
	case <-wctx.Done():
		return false, fmt.Errorf("wait for a check: %w", wctx.Err())
	}
	defer func() { <-c.sem }()
	good := false
	switch {
	case login == nil:
		_ = c.compare(c.dummy(gate.Cost), []byte(pass))
	case login.Hash != "":
		good = c.compare([]byte(login.Hash), []byte(pass)) == nil
	default:
		a, b := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(login.Password))
		good = subtle.ConstantTimeCompare(a[:], b[:]) == 1
		_ = c.compare(c.dummy(gate.Cost), []byte(pass))
	}
	if good {
		c.remember(key)
	}
	return good, nil
}

func (c *Checker) remembered(key [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.ok[key]
	return ok && time.Now().Before(until)
}

func (c *Checker) remember(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ok) >= c.opts.MaxRemembered {
		now := time.Now()
		for k, until := range c.ok {
			if !now.Before(until) {
				delete(c.ok, k)
			}
		}
		if len(c.ok) >= c.opts.MaxRemembered {
			clear(c.ok)
		}
	}
	c.ok[key] = time.Now().Add(c.opts.Remember)
}

// dummy returns a hash at cost that no password matches in practice.
func (c *Checker) dummy(cost int) []byte {
	cost = min(max(cost, bcrypt.MinCost), 31)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.dummies[cost]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte("sitefleet: no such user"), cost)
	if err != nil {
		return nil // CompareHashAndPassword then fails at once
	}
	c.dummies[cost] = h
	return h
}

// basicAuth reads the client's basic-authentication credentials.
func basicAuth(r *http.Request) (user, pass string, ok bool) {
	h := r.Header.Get("Authorization")
	scheme, enc, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") || len(enc) > 1024 {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// NormalizePath returns the path of a request target as nginx resolves
// it to a file: the query dropped, percent escapes decoded, runs of
// slashes merged and "." and ".." segments resolved (never above the
// root). A target that does not decode or holds a NUL is an error.
func NormalizePath(target string) (string, error) {
	raw, _, _ := strings.Cut(target, "?")
	if !strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("target %.60q does not start with /", target)
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("target %.60q: %w", target, err)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("target %.60q holds a NUL", target)
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean, nil
}
