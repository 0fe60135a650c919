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
	"slices"
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
	// Parallel bounds concurrent bcrypt checks (default half the CPUs,
	// at least one, so that a flood of wrong passwords leaves nginx and
	// etcd CPU); a check that waits longer than Wait (default 5s) answers
	// 503.
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

	mu sync.Mutex
	ok map[[32]byte]time.Time // remembered successes, until when
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
		o.Parallel = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{opts: o, sem: make(chan struct{}, o.Parallel), compare: bcrypt.CompareHashAndPassword, ok: map[[32]byte]time.Time{}}
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
	logins := loginsFor(gate, p)
	if len(logins) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	user, pass, ok := basicAuth(r)
	if ok {
		ok, err = c.check(r.Context(), logins, host, user, pass)
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

// check reports whether user and pass are one of logins. A login
// without a user (a bundle whose rules could not be read) lets no one in.
func (c *Checker) check(ctx context.Context, logins []Login, host, user, pass string) (bool, error) {
	var mine []Login
	for _, l := range logins {
		if l.User == user && user != "" {
			mine = append(mine, l)
		}
	}
	key := sha256.New()
	for _, part := range []string{host, user, pass} {
		key.Write([]byte(part))
		key.Write([]byte{0})
	}
	for _, l := range mine {
		key.Write([]byte(l.Hash + "\x00" + l.Password + "\x00"))
	}
	var k [32]byte
	copy(k[:], key.Sum(nil))
	if len(mine) > 0 && c.remembered(k) {
		return true, nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.opts.Wait)
	defer cancel()
	select {
	case c.sem <- struct{}{}:
	case <-wctx.Done():
		return false, fmt.Errorf("wait for a check: %w", wctx.Err())
	}
	defer func() { <-c.sem }()
	good, cost := false, costOf(logins)
	if len(mine) == 0 {
		_ = c.compare(dummy(cost), []byte(pass))
	}
	// A user listed twice (a site's and a bundle's) may use either
	// password; each costs one comparison.
	for _, l := range mine {
		if l.Hash != "" {
			good = c.compare([]byte(l.Hash), []byte(pass)) == nil
		} else {
			a, b := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(l.Password))
			good = subtle.ConstantTimeCompare(a[:], b[:]) == 1
			_ = c.compare(dummy(cost), []byte(pass))
		}
		if good {
			break
		}
	}
	if good {
		c.remember(k)
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

// defaultCost is the cost of the dummy comparison for a path whose
// logins have no hash (a bundle's clear passwords only).
const defaultCost = 10

// costOf is the bcrypt cost of the hashes among logins (a site's hashes
// share one), defaultCost without any: what a check of a user who does
// not exist, or has a clear password, spends, so that every check of a
// path costs the same.
func costOf(logins []Login) int {
	for _, l := range logins {
		if l.Hash != "" {
			if c, err := bcrypt.Cost([]byte(l.Hash)); err == nil {
				return c
			}
		}
	}
	return defaultCost
}

// dummy returns a hash at cost that no password matches in practice:
// comparing with it costs one bcrypt at that cost, as a real user's
// hash does. It is a fixed salt and digest under the cost, so nothing
// is generated (which would make a first check slower than the others).
func dummy(cost int) []byte {
	cost = min(max(cost, bcrypt.MinCost), bcrypt.MaxCost)
	return []byte(fmt.Sprintf("$2a$%02d$%s", cost, dummySaltAndDigest))
}

// dummySaltAndDigest is the salt and digest of a bcrypt hash of a
// password nobody uses.
const dummySaltAndDigest = "7lUOBZf.ZEzS3xjCjPNx5ORUaJx3cVPj5XJb0g5TbGm3rXnw0IMmK"

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
// it to a file: the query (or a literal "#" and what follows) dropped, percent escapes decoded, runs of
// slashes merged and "." and ".." segments resolved (never above the
// root). A target that does not decode or holds a NUL is an error.
func NormalizePath(target string) (string, error) {
	// nginx ends the path at "?" or at a literal "#".
	raw := target
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		raw = target[:i]
	}
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

// Candidates are the paths of the files a request for p may be answered
// with: p itself, p.html and p/index.html (clean URLs and directory
// indexes), and for a request of a file.html or index.html, the clean
// forms that name it too. A path is protected when any of them is, so no
// spelling of a protected file gets through.
func Candidates(p string) []string {
	out := []string{p}
	if strings.HasSuffix(p, "/") {
		out = append(out, p+"index.html", strings.TrimSuffix(p, "/"))
	} else {
		out = append(out, p+".html", p+"/", p+"/index.html")
	}
	if dir, ok := strings.CutSuffix(p, "/index.html"); ok {
		out = append(out, dir+"/", dir)
	} else if page, ok := strings.CutSuffix(p, ".html"); ok {
		out = append(out, page)
	}
	return out
}

// loginsFor is who may request p: the logins of every candidate file.
func loginsFor(gate Gate, p string) []Login {
	var out []Login
	for _, c := range Candidates(p) {
		if c == "" {
			c = "/"
		}
		for _, l := range gate.Logins(c) {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}
