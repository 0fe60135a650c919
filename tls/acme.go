package tls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/state"
)

// ACMEOptions configure the ACME CA the leader obtains certificates from.
type ACMEOptions struct {
	DirectoryURL string
	Email        string
	// Transport reaches the CA; nil is http.DefaultTransport.
	Transport http.RoundTripper
	// RetryMin and RetryMax bound the back-off after a failed issuance for
	// a name: RetryMin, doubling per failure up to RetryMax.
	RetryMin, RetryMax time.Duration
}

// ACMEStatus is the leader's record of its work on one name.
type ACMEStatus struct {
	Name string `json:"name"`
	// State is "pending" (being obtained), "failed" (waiting to retry) or
	// "issued".
	State       string    `json:"state"`
	Error       string    `json:"error,omitempty"`
	Failures    int       `json:"failures,omitempty"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// readACMEStatuses reads the issuance status of every ACME name.
func readACMEStatuses(ctx context.Context, store Records) (map[string]ACMEStatus, error) {
	raw, err := store.ACMEStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("read acme status: %w", err)
	}
	out := make(map[string]ACMEStatus, len(raw))
	for _, b := range raw {
		var s ACMEStatus
		if json.Unmarshal(b, &s) == nil {
			out[s.Name] = s
		}
	}
	return out, nil
}

// acmeStore is the part of the state store that holds the ACME cache.
type acmeStore interface {
	GetACMECache(ctx context.Context, name string) (string, bool, error)
	PutACMECache(ctx context.Context, name, value string, guard state.Guard) error
	DeleteACMECache(ctx context.Context, name string, guard state.Guard) error
}

// stateCache is autocert's cache kept in the state store, sealed with the
// cluster key. Every node reads it (to answer HTTP-01 challenges); only
// the leader writes, under its guard.
type stateCache struct {
	store  acmeStore
	sealer *Sealer
	guard  *state.Guard // nil: read-only
}

var _ autocert.Cache = (*stateCache)(nil)

// Get returns the opened value, or autocert.ErrCacheMiss.
func (c *stateCache) Get(ctx context.Context, name string) ([]byte, error) {
	sealed, ok, err := c.store.GetACMECache(ctx, name)
	switch {
	case state.ErrorCode(err) == state.Invalid, err == nil && !ok:
		return nil, autocert.ErrCacheMiss
	case err != nil:
		return nil, fmt.Errorf("acme cache: %w", err)
	}
	v, err := c.sealer.Open(sealed, "acme/"+name)
	if err != nil {
		return nil, fmt.Errorf("acme cache: %s: %w", name, err)
	}
	return v, nil
}

// Put seals and stores a value; only while the leadership lasts.
func (c *stateCache) Put(ctx context.Context, name string, data []byte) error {
	if c.guard == nil {
		return errors.New("acme cache: read-only on this node")
	}
	sealed, err := c.sealer.Seal(data, "acme/"+name)
	if err != nil {
		return fmt.Errorf("acme cache: %w", err)
	}
	return c.store.PutACMECache(ctx, name, sealed, *c.guard)
}

// Delete removes a value; only while the leadership lasts.
func (c *stateCache) Delete(ctx context.Context, name string) error {
	if c.guard == nil {
		return errors.New("acme cache: read-only on this node")
	}
	return c.store.DeleteACMECache(ctx, name, *c.guard)
}

// termTransport refuses every request once the leadership has ended, and
// ends requests in flight with it, so a deposed leader never completes an
// issuance the new leader will also make.
type termTransport struct {
	ctx     context.Context
	base    http.RoundTripper
	reasons *failureReasons
}

// failureReasons keeps, per name, the CA's last reason for a failed
// http-01 validation, as seen in authorizations: autocert hides it.
type failureReasons struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *failureReasons) set(name, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]string{}
	}
	f.m[name] = reason
}

// take returns and forgets the reason for name.
func (f *failureReasons) take(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.m[name]
	delete(f.m, name)
	return r
}

func (t termTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.ctx.Err(); err != nil {
		return nil, fmt.Errorf("acme: leadership ended: %w", err)
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, done: func() { stop(); cancel() }}
	return onlyHTTP01(resp, t.reasons)
}

// onlyHTTP01 removes the challenges other than http-01 from an ACME
// authorization. Nodes answer http-01 only (nginx passes the requests to
// them), and autocert tries tls-alpn-01 first when the CA offers it: each
// such attempt would be a failed validation, which CAs rate-limit.
func onlyHTTP01(resp *http.Response, reasons *failureReasons) (*http.Response, error) {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	// Authorizations are small; a larger body is passed on untouched.
	const maxAuthz = 1 << 20
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthz+1))
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("acme: read response: %w", err)
	}
	if len(body) > maxAuthz {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var authz map[string]json.RawMessage
	if json.Unmarshal(body, &authz) != nil || authz["challenges"] == nil || authz["identifier"] == nil {
		return resp, nil
	}
	var challenges []map[string]any
	if json.Unmarshal(authz["challenges"], &challenges) != nil {
		return resp, nil
	}
	var ident struct{ Value string }
	_ = json.Unmarshal(authz["identifier"], &ident)
	kept := challenges[:0]
	for _, c := range challenges {
		if c["type"] == "http-01" {
			kept = append(kept, c)
			if p, ok := c["error"].(map[string]any); ok && reasons != nil && ident.Value != "" {
				reasons.set(ident.Value, fmt.Sprint(p["detail"]))
			}
		}
	}
	if len(kept) == len(challenges) {
		return resp, nil
	}
	authz["challenges"], _ = json.Marshal(kept)
	out, err := json.Marshal(authz)
	if err != nil {
		return resp, nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return resp, nil
}

// cancelOnClose releases a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	done func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.done()
	return err
}

// ACMEIssuer returns the leader task that obtains and renews a certificate
// for every name of every site in mode acme, through autocert with its
// cache in etcd: a new leader finds what the last one obtained and does not
// ask the CA again. Each certificate is copied into the state as
// "acme-<name>" for the nodes to serve; certificates no site uses are
// removed. A failed name is retried after RetryMin, doubling up to
// RetryMax; its status is kept in etcd for `cert list`.
func ACMEIssuer(o LeaderOptions, a ACMEOptions) cluster.LeaderTask {
	return func(ctx context.Context, f cluster.Fence) error {
		base := http.DefaultTransport
		if a.Transport != nil {
			base = a.Transport
		}
		guard := f.Guard()
		cache := &stateCache{store: o.Store, sealer: o.Sealer, guard: &guard}
		reasons := &failureReasons{}
		client := &http.Client{Transport: termTransport{ctx: ctx, base: base, reasons: reasons}, Timeout: 2 * time.Minute}
		w := &acmeWork{o: o, a: a, guard: guard, reasons: reasons, backoff: map[string]ACMEStatus{}, newManager: func() *autocert.Manager {
			m := &autocert.Manager{
				Prompt: autocert.AcceptTOS,
				Cache:  renewingCache{cache, o.RenewBefore},
				// The leader renews RenewBefore expiry itself (see
				// renewingCache); autocert's own timer, which outlives
				// the Manager, comes a minute before expiry and then
				// finds the renewed certificate in the cache.
				RenewBefore: time.Minute,
				Email:       a.Email,
				Client:      &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: client, UserAgent: "sitefleet"},
				HostPolicy:  func(context.Context, string) error { return nil }, // names come from the state only
			}
			// HTTPHandler is what turns on http-01 in autocert; the handler
			// itself is not needed here (every node serves ChallengeHandler).
			_ = m.HTTPHandler(nil)
			return m
		}}
		return onStateChange(ctx, o, time.Minute, func() (time.Duration, error) { return w.pass(ctx) })
	}
}

type acmeWork struct {
	o LeaderOptions
	a ACMEOptions
	// guard fences every write with the leadership.
	guard state.Guard
	// reasons holds the CA's reasons for failed validations.
	reasons *failureReasons
	// newManager returns a fresh autocert.Manager for one name: a Manager
	// remembers a failure for a minute and keeps what it loaded.
	newManager func() *autocert.Manager
	backoff    map[string]ACMEStatus // failed names, by name
	next       wakeAt                // how soon this pass wants the next
}

// renewingCache hides from autocert a cached certificate that is due for
// renewal, so that asking for it obtains a new one. A certificate another
// leader renewed already is not hidden: it is not due.
type renewingCache struct {
	*stateCache
	window time.Duration
}

func (c renewingCache) Get(ctx context.Context, name string) ([]byte, error) {
	data, err := c.stateCache.Get(ctx, name)
	if err != nil || strings.Contains(name, "+") || strings.Contains(name, "_") {
		return data, err // not a certificate entry
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return data, nil
		}
		if b.Type != pemCertificate {
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err == nil && renewalDue(leaf.NotAfter, time.Now(), c.window) {
			return nil, autocert.ErrCacheMiss
		}
		return data, nil
	}
}

// pass obtains what is missing or due; it returns how soon it wants to
// run again (the earliest retry of a failed name), 0 for no preference.
func (w *acmeWork) pass(ctx context.Context) (time.Duration, error) {
	snap, err := w.o.snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("acme: %w", err)
	}
	if snap.PendingImport != "" {
		return 0, nil
	}
	certs := map[string]state.Certificate{}
	for _, c := range snap.Certificates {
		certs[c.ID] = c
	}
	wanted := map[string]bool{}
	var names []string
	for _, s := range snap.Sites {
		if s.ModeOf() == state.TLSACME {
			names = append(names, s.Names()...)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if ctx.Err() != nil {
			return 0, nil
		}
		id := state.AutoCertID(state.CertACME, name)
		wanted[id] = true
		if b, ok := w.backoff[name]; ok && time.Now().Before(b.NextAttempt) {
			continue
		}
		cur, have := certs[id]
		if have && !NeedsRenewal(cur, time.Now(), w.o.RenewBefore) {
			w.due(cur.NotAfter)
			continue
		}
		if err := w.ensure(ctx, name, cur, have); err != nil {
			if ctx.Err() != nil {
				return 0, nil
			}
			w.fail(ctx, name, err)
			continue
		}
		if _, failed := w.backoff[name]; failed || !have {
			delete(w.backoff, name)
			w.putStatus(ctx, ACMEStatus{Name: name, State: "issued", UpdatedAt: time.Now().UTC()})
		}
	}
	if len(snap.Unreadable) > 0 || len(snap.BadRecords) > 0 {
		// An unreadable record may use or be any of them: remove nothing.
		return w.next.d, nil
	}
	for id, c := range certs {
		if c.Type == state.CertACME && !wanted[id] {
			removeUnused(ctx, w.o, id, w.guard)
		}
	}
	w.forgetUnwanted(ctx, wanted)
	for _, b := range w.backoff {
		w.next.at(b.NextAttempt)
	}
	next := w.next.d
	w.next = wakeAt{}
	return next, nil
}

// due notes a certificate's renewal time as a time to run again.
func (w *acmeWork) due(notAfter time.Time) { w.next.at(notAfter.Add(-w.o.RenewBefore)) }

// forgetUnwanted drops the back-off and the status of every name no site
// in mode acme has any more, whether or not it ever got a certificate.
func (w *acmeWork) forgetUnwanted(ctx context.Context, wanted map[string]bool) {
	unwanted := func(name string) bool { return !wanted[state.AutoCertID(state.CertACME, name)] }
	for name := range w.backoff {
		if unwanted(name) {
			delete(w.backoff, name)
		}
	}
	statuses, err := w.o.Store.ACMEStatuses(ctx)
	if err != nil {
		return // the next pass tries again
	}
	for name := range statuses {
		if unwanted(name) {
			_ = w.o.Store.DeleteACMEStatus(ctx, name, w.guard)
		}
	}
}

// ensure gets the certificate for name from autocert (its memory, the
// etcd cache, or the CA) and records it in the state when it differs from
// the record there.
func (w *acmeWork) ensure(ctx context.Context, name string, cur state.Certificate, have bool) error {
	if !have {
		w.putStatus(ctx, ACMEStatus{Name: name, State: "pending", Failures: w.backoff[name].Failures, UpdatedAt: time.Now().UTC()})
	}
	tc, err := w.newManager().GetCertificate(&tls.ClientHelloInfo{
		ServerName:       name,
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	})
	if err != nil {
		return err
	}
	if have && cur.Serial == fmt.Sprintf("%x", tc.Leaf.SerialNumber) {
		return nil
	}
	chainPEM, keyPEM, err := encodeTLSCert(tc)
	if err != nil {
		return err
	}
	now := time.Now()
	p, err := ValidateImport(chainPEM, keyPEM, []string{name}, now)
	if err != nil {
		return fmt.Errorf("certificate from the CA: %w", err)
	}
	id := state.AutoCertID(state.CertACME, name)
	c, err := NewCertificate(id, TypeACME, p, w.o.Sealer, now)
	if err != nil {
		return err
	}
	pre := state.Precondition{IfNoneMatch: !have, IfMatch: cur.Revision}
	if _, err := w.o.Store.PutCertificate(ctx, c, pre, w.guard); err != nil {
		return fmt.Errorf("record certificate: %w", err)
	}
	w.o.Logger.Info("obtained ACME certificate", "name", name, "serial", c.Serial, "notAfter", c.NotAfter, "issuer", c.Issuer)
	w.due(c.NotAfter)
	return nil
}

func (w *acmeWork) fail(ctx context.Context, name string, err error) {
	if reason := w.reasons.take(name); reason != "" && strings.Contains(err.Error(), "no viable challenge type") {
		// autocert gave up after a failed validation; say why.
		err = fmt.Errorf("the CA could not validate %s over http-01: %s", name, reason)
	}
	st := w.backoff[name]
	st.Name, st.State, st.Error = name, "failed", err.Error()
	st.Failures++
	delay := w.a.RetryMin
	for i := 1; i < st.Failures && delay < w.a.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, w.a.RetryMax)
	st.NextAttempt = time.Now().Add(delay).UTC()
	st.UpdatedAt = time.Now().UTC()
	w.backoff[name] = st
	w.o.Logger.Warn("could not obtain ACME certificate", "name", name, "error", err, "failures", st.Failures, "retryIn", delay)
	w.putStatus(ctx, st)
}

func (w *acmeWork) putStatus(ctx context.Context, st ACMEStatus) {
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	if err := w.o.Store.PutACMEStatus(ctx, st.Name, b, w.guard); err != nil && ctx.Err() == nil {
		w.o.Logger.Debug("could not record ACME status", "name", st.Name, "error", err)
	}
}

// encodeTLSCert returns the chain and the key of a tls.Certificate as PEM;
// ValidateImport checks them after.
func encodeTLSCert(tc *tls.Certificate) (chainPEM, keyPEM []byte, err error) {
	for _, der := range tc.Certificate {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})...)
	}
	signer, ok := tc.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("acme: certificate key cannot sign")
	}
	keyPEM, err = encodeKey(signer)
	return chainPEM, keyPEM, err
}
