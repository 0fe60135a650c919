package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// Options configure the dispatcher.
type Options struct {
	Store  *state.Store
	Sealer *sftls.Sealer
	// Client sends the deliveries; default: a 10 s timeout, no redirects
	// followed.
	Client *http.Client
	// Interval is how often the outbox is read (default 1s).
	Interval time.Duration
	// MaxAttempts is how many failed attempts make a delivery give up
	// (default 10: with the backoff, about 17 minutes).
	MaxAttempts int
	// Concurrency bounds the deliveries in flight (default 8).
	Concurrency int
	// LogKeep is how many delivery log entries are kept (default 1000).
	LogKeep int
	// Outcome reads whether every live node serves a site at a state
	// revision, and the nodes' errors for it (cluster.DeployOutcome).
	// Without it there are no deploy.succeeded and deploy.failed events.
	Outcome func(ctx context.Context, site string, rev int64) (done bool, failures map[string]string, err error)
	// DeployTimeout is how long a deploy may take to be served by every
	// live node before it is reported failed (default 10 minutes).
	DeployTimeout time.Duration
	cursorEvery   time.Duration
	// ExpiringWithin is how close to its expiry a certificate makes a
	// certificate.expiring event (default 14 days); ExpiryCheck how often
	// that is checked (default an hour).
	ExpiringWithin, ExpiryCheck time.Duration
	Logger                      *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.LogKeep <= 0 {
		o.LogKeep = 1000
	}
	if o.DeployTimeout <= 0 {
		o.DeployTimeout = 10 * time.Minute
	}
	if o.ExpiringWithin <= 0 {
		o.ExpiringWithin = 14 * 24 * time.Hour
	}
	if o.ExpiryCheck <= 0 {
		o.ExpiryCheck = time.Hour
	}
	if o.cursorEvery <= 0 {
		o.cursorEvery = cursorEvery
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Backoff is the wait after the n-th failed attempt: 1s, 2s, 4s, ... at
// most 5 minutes.
func Backoff(n int) time.Duration {
	return min(time.Second<<min(max(n-1, 0), 20), 5*time.Minute)
}

// Task returns the leader task that derives events and delivers them.
func Task(opts Options) cluster.LeaderTask {
	o := opts.withDefaults()
	return func(ctx context.Context, f cluster.Fence) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { o.derive(gctx, f.Guard(), o.deriveOnce, "site changes"); return nil })
		for _, src := range sources(o.Store.Keys()) {
			g.Go(func() error {
				o.derive(gctx, f.Guard(), func(ctx context.Context, guard state.Guard) error { return o.deriveSource(ctx, guard, src) }, src.name)
				return nil
			})
		}
		g.Go(func() error { o.expiring(gctx, f.Guard()); return nil })
		g.Go(func() error { o.deliver(gctx, f.Guard()); return nil })
		if o.Outcome != nil {
			g.Go(func() error { o.follow(gctx, f.Guard()); return nil })
		}
		return g.Wait()
	}
}

// derive runs once (a deriving watch) again after each failure until ctx
// ends.
func (o Options) derive(ctx context.Context, guard state.Guard, once func(context.Context, state.Guard) error, what string) {
	delay := time.Second
	for ctx.Err() == nil {
		err := once(ctx, guard)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, state.ErrFenceLost) {
			return
		}
		if err != nil {
			o.Logger.Warn("hooks: following "+what+" failed; retrying", "err", err, "in", delay)
		}
		if !ctxutil.Sleep(ctx, delay) {
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (o Options) deriveOnce(ctx context.Context, guard state.Guard) error {
	cursor, current, err := o.Store.HookCursor(ctx)
	if err != nil {
		return err
	}
	if cursor == 0 {
		if cursor, err = o.firstCursor(ctx, current); err != nil {
			return err
		}
		if err := o.Store.EnqueueHookDeliveries(ctx, nil, nil, cursor, guard); err != nil {
			return err
		}
	}
	err = o.Store.WatchSiteChanges(ctx, cursor, func(changes []state.SiteChange, through int64) error {
		if len(changes) == 0 {
			return nil
		}
		hooks, err := o.Store.ListHooks(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		var pending []model.HookEvent
		if o.Outcome != nil {
			pending = pendingDeploys(changes, hooks, now)
		}
		return o.Store.EnqueueHookDeliveries(ctx, deliveries(changes, hooks, now), pending, through, guard)
	})
	if errors.Is(err, state.ErrHistoryGone) {
		last, lerr := o.Store.LastSiteChange(ctx)
		if lerr != nil {
			return lerr
		}
		if last > cursor {
			o.Logger.Warn("hooks: etcd's history after the hook cursor was compacted; the events of site changes in between are not sent",
				"cursor", cursor, "now", current)
		}
		return o.Store.EnqueueHookDeliveries(ctx, nil, nil, current, guard)
	}
	return err
}

// firstCursor is where the fleet's first dispatcher starts: now, or just
// before the oldest hook was added if that was earlier (a hook added and
// a change made before the leader's task started still make an event).
func (o Options) firstCursor(ctx context.Context, current int64) (int64, error) {
	hooks, err := o.Store.ListHooks(ctx)
	if err != nil {
		return 0, err
	}
	for _, h := range hooks {
		current = min(current, h.Revision-1)
	}
	return max(current, 1), nil
}

// source is a prefix of the store whose changes make events, followed
// from a cursor of its own.
type source struct {
	name, prefix string
	events       func(state.KVChange, time.Time) []model.HookEvent
}

func sources(k state.Keys) []source {
	return []source{
		{"nodes", k.Nodes(), NodeEvents},
		{"certs", k.Certs(), CertEvents},
		{"acme", k.ACMEStatus(), ACMEEvents},
	}
}

// cursorEvery is how often at most a source's cursor moves for changes
// that make no event (Options.cursorEvery, for tests, overrides it).
const cursorEvery = time.Minute

// deriveSource turns the changes of src after its cursor into deliveries.
// The cursor moves with events to send, and otherwise at most once per
// cursorEvery (node records change with every state a node applies).
// When etcd's history after it is gone, it starts from the current
// revision: the events of a fleet without a leader for longer than the
// compaction retention are not sent.
func (o Options) deriveSource(ctx context.Context, guard state.Guard, src source) error {
	cursor, current, err := o.Store.HookCursorOf(ctx, src.name)
	if err != nil {
		return err
	}
	if cursor == 0 {
		if cursor, err = o.firstCursor(ctx, current); err != nil {
			return err
		}
		if err := o.Store.EnqueueHookDeliveriesOf(ctx, src.name, nil, cursor, guard); err != nil {
			return err
		}
	}
	written := time.Now()
	err = o.Store.WatchPrefixChanges(ctx, src.prefix, cursor, func(changes []state.KVChange, through int64) error {
		now := time.Now()
		var events []model.HookEvent
		for _, c := range changes {
			events = append(events, src.events(c, now)...)
		}
		if len(events) == 0 {
			// Changes without events move the cursor at most once per
			// cursorEvery, so that it stays well within the history etcd
			// keeps: a leader taking over resumes from it instead of
			// finding it compacted and missing what happened meanwhile.
			if now.Sub(written) < o.cursorEvery {
				return nil
			}
			written = now
			return o.Store.EnqueueHookDeliveriesOf(ctx, src.name, nil, through, guard)
		}
		written = now
		hooks, err := o.Store.ListHooks(ctx)
		if err != nil {
			return err
		}
		var ds []model.HookDelivery
		for _, e := range events {
			ds = append(ds, deliveriesOf(e, hooks, now)...)
		}
		return o.Store.EnqueueHookDeliveriesOf(ctx, src.name, ds, through, guard)
	})
	if errors.Is(err, state.ErrHistoryGone) {
		o.Logger.Debug("hooks: the history after the cursor was compacted; following from now", "source", src.name, "cursor", cursor, "now", current)
		return o.Store.EnqueueHookDeliveriesOf(ctx, src.name, nil, current, guard)
	}
	return err
}

// expiring sends certificate.expiring once for each certificate (each
// version of it) that expires within ExpiringWithin, checking every
// ExpiryCheck, until ctx ends.
func (o Options) expiring(ctx context.Context, guard state.Guard) {
	for {
		if err := o.expiringOnce(ctx, guard, time.Now()); err != nil && ctx.Err() == nil {
			o.Logger.Warn("hooks: checking certificate expiry failed", "err", err)
		}
		if !ctxutil.Sleep(ctx, o.ExpiryCheck) {
			return
		}
	}
}

func (o Options) expiringOnce(ctx context.Context, guard state.Guard, now time.Time) error {
	hooks, err := o.Store.ListHooks(ctx)
	if err != nil || !slices.ContainsFunc(hooks, func(h model.Hook) bool { return wants(h, model.EventCertExpiring) }) {
		return err
	}
	certs, err := o.Store.ListCertificates(ctx)
	if err != nil {
		return err
	}
	current := map[string]bool{}
	for _, c := range certs {
		if c.NotAfter.After(now.Add(o.ExpiringWithin)) {
			continue
		}
		// The record's revision names this version of the certificate: a
		// renewal is a new record revision, and warns again if need be.
		e := event(model.EventCertExpiring, c.ID, c.Revision, now)
		e.Site, e.Certificate = "", certInfo(c)
		current[e.ID] = true
		if err := o.Store.EnqueueHookEventOnce(ctx, e.ID, deliveriesOf(e, hooks, now), guard); err != nil {
			return err
		}
	}
	// The markers of certificates renewed, removed or no longer close to
	// expiry go.
	return o.Store.PruneHookSent(ctx, current, guard)
}

// follow turns pending deploys into deploy.succeeded (every live node
// serves the site at the deploy's revision or later) or deploy.failed (a
// node reports an error for the site, or DeployTimeout passed) until ctx
// ends.
func (o Options) follow(ctx context.Context, guard state.Guard) {
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if err := o.followOnce(ctx, guard); err != nil && ctx.Err() == nil {
			o.Logger.Warn("hooks: following deploys failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o Options) followOnce(ctx context.Context, guard state.Guard) error {
	pending, err := o.Store.PendingDeploys(ctx, 100)
	if err != nil || len(pending) == 0 {
		return err
	}
	hooks, err := o.Store.ListHooks(ctx)
	if err != nil {
		return err
	}
	for _, p := range pending {
		var out *model.HookEvent
		if p.Site != "" && isDeploy(p.Type) {
			done, failures, err := o.Outcome(ctx, p.Site, p.Revision)
			if err != nil {
				return err
			}
			now := time.Now()
			switch {
			case done:
				e := event(model.EventDeploySucceeded, p.Site, p.Revision, now)
				out = &e
			case len(failures) > 0:
				e := event(model.EventDeployFailed, p.Site, p.Revision, now)
				e.Errors = failures
				out = &e
			case now.Sub(p.Time) > o.DeployTimeout:
				e := event(model.EventDeployFailed, p.Site, p.Revision, now)
				e.Errors = map[string]string{"fleet": fmt.Sprintf("not served by every live node within %s", o.DeployTimeout)}
				out = &e
			default:
				continue
			}
			out.Deployment, out.Previous = p.Deployment, p.Previous
		}
		var ds []model.HookDelivery
		if out != nil {
			ds = deliveriesOf(*out, hooks, time.Now())
		}
		if err := o.Store.ResolvePendingDeploy(ctx, p.ID, ds, guard); err != nil {
			return err
		}
	}
	return nil
}

// deliver makes the due deliveries of the outbox until ctx ends.
func (o Options) deliver(ctx context.Context, guard state.Guard) {
	var (
		mu       sync.Mutex
		inFlight = map[string]bool{} // hooks with a delivery in flight
		wg       sync.WaitGroup
		slots    = make(chan struct{}, o.Concurrency)
		trimmed  time.Time
	)
	defer wg.Wait()
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		ds, err := o.Store.Outbox(ctx, 1000)
		var hooks []model.Hook
		if err == nil && len(ds) > 0 {
			hooks, err = o.Store.ListHooks(ctx)
		}
		if err != nil {
			// Without both, nothing is decided: an empty hook list would
			// read as "every hook was removed" and drop the deliveries.
			if ctx.Err() == nil {
				o.Logger.Warn("hooks: reading the outbox failed", "err", err)
			}
			ds = nil
		}
		byID := map[string]model.Hook{}
		for _, h := range hooks {
			byID[h.ID] = h
		}
		now := time.Now()
		for _, d := range ds {
			// One delivery per hook at a time, in the order of the
			// changes (the outbox's), except around retries.
			key := d.Hook
			h, ok := byID[d.Hook]
			mu.Lock()
			busy := inFlight[key]
			mu.Unlock()
			switch {
			case busy || d.NextAttempt.After(now):
				continue
			case !ok:
				// The hook was removed (or the record is unreadable).
				if err := o.Store.RecordHookAttempt(ctx, d, model.HookLogEntry{}, true, guard); err != nil && ctx.Err() == nil {
					o.Logger.Warn("hooks: dropping a delivery failed", "event", d.Event.ID, "err", err)
				}
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			mu.Lock()
			inFlight[key] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(inFlight, key)
					mu.Unlock()
					<-slots
				}()
				o.attempt(ctx, guard, d, h)
			})
		}
		if time.Since(trimmed) > time.Minute && len(hooks) > 0 {
			trimmed = time.Now()
			if err := o.Store.TrimHookLog(ctx, o.LogKeep, guard); err != nil && ctx.Err() == nil {
				o.Logger.Warn("hooks: trimming the delivery log failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// attempt makes one delivery and records its outcome.
func (o Options) attempt(ctx context.Context, guard state.Guard, d model.HookDelivery, h model.Hook) {
	start := time.Now()
	status, err := o.post(ctx, d.Event, h)
	if ctx.Err() != nil {
		return // the leadership ended: the next leader delivers it
	}
	d.Attempts++
	entry := model.HookLogEntry{Time: time.Now().UTC(), Hook: h.ID, URL: h.URL, Event: d.Event.ID, Type: d.Event.Type,
		Attempt: d.Attempts, Status: status, Result: "delivered", DurationMS: float64(time.Since(start).Microseconds()) / 1000}
	done := err == nil
	if err != nil {
		entry.Error, d.LastError = err.Error(), err.Error()
		if d.Attempts >= o.MaxAttempts {
			entry.Result, done = "failed", true
			o.Logger.Warn("hooks: giving up a delivery", "hook", h.ID, "event", d.Event.ID, "attempts", d.Attempts, "err", err)
		} else {
			entry.Result = "retrying"
			d.NextAttempt = time.Now().Add(Backoff(d.Attempts)).UTC()
		}
	}
	if err := o.Store.RecordHookAttempt(ctx, d, entry, done, guard); err != nil && ctx.Err() == nil {
		o.Logger.Warn("hooks: recording a delivery failed", "hook", h.ID, "event", d.Event.ID, "err", err)
	}
}

// maxResponse bounds what is read of a receiver's answer.
const maxResponse = 4096

// post sends one event to a hook; a 2xx answer is success.
func (o Options) post(ctx context.Context, e model.HookEvent, h model.Hook) (int, error) {
	secret, err := o.Sealer.Open(h.Secret, SecretContext(h.ID))
	if err != nil {
		return 0, fmt.Errorf("open the hook's secret: %w", err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode the event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sitefleet-hooks")
	req.Header.Set(EventHeader, e.Type)
	req.Header.Set(IDHeader, e.ID)
	req.Header.Set(SignatureHeader, Sign(secret, time.Now(), body))
	resp, err := o.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// SecretContext binds a hook's sealed secret to the hook.
func SecretContext(id string) string { return "hook:" + id }
