package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/model"
)

// Webhooks: their configuration, the outbox of deliveries and the log of
// attempts. Package hooks runs them.
type (
	Hook         = model.Hook
	HookEvent    = model.HookEvent
	HookDelivery = model.HookDelivery
	HookLogEntry = model.HookLogEntry
)

// MaxHooks bounds how many hooks a fleet has.
const MaxHooks = 100

// Hooks is the prefix of the hooks' records: <prefix>/hooks/config/<id>.
func (k Keys) Hooks() string         { return k.Prefix + "/hooks/config/" }
func (k Keys) Hook(id string) string { return k.Hooks() + id }

// HookCursor holds the last etcd revision whose site changes were turned
// into deliveries.
func (k Keys) HookCursor() string { return k.Prefix + "/hooks/cursor" }

// HookSourceCursor holds the cursor of another source of events
// ("nodes", "certs", "acme").
func (k Keys) HookSourceCursor(source string) string { return k.Prefix + "/hooks/cursor-" + source }

// Outbox is the prefix of deliveries still to make:
// <prefix>/hooks/outbox/<event id>/<hook id>.
func (k Keys) Outbox() string { return k.Prefix + "/hooks/outbox/" }

func (k Keys) outboxKey(d HookDelivery) string { return k.Outbox() + d.Event.ID + "/" + d.Hook }

// HookPending is the prefix of the deploys whose outcome (served by every
// live node, or failed) hooks wait for: <prefix>/hooks/pending/<event id>.
func (k Keys) HookPending() string { return k.Prefix + "/hooks/pending/" }

// HookLog is the prefix of the delivery log, keyed by time.
func (k Keys) HookLog() string { return k.Prefix + "/hooks/log/" }

func (k Keys) hookLogKey(e HookLogEntry) string {
	return fmt.Sprintf("%s%020d-%s-%s-%d", k.HookLog(), e.Time.UnixNano(), e.Event, e.Hook, e.Attempt)
}

// AddHook stores a new hook. Errors: Exists (the ID is taken), Invalid
// (MaxHooks reached), Unavailable.
func (s *Store) AddHook(ctx context.Context, h Hook) error {
	hooks, err := s.ListHooks(ctx)
	if err != nil {
		return err
	}
	if len(hooks) >= MaxHooks {
		return Errorf(Invalid, "a fleet has at most %d hooks: remove one first", MaxHooks)
	}
	h.Revision = 0
	val, err := marshal(h)
	if err != nil {
		return err
	}
	key := s.keys.Hook(h.ID)
	_, ok, err := s.fencedTxn(ctx, "add hook", nil, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, []clientv3.Op{clientv3.OpPut(key, val)})
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(Exists, "hook %q exists", h.ID)
	}
	return nil
}

// DeleteHook removes a hook and the deliveries still owed to it. Errors:
// NotFound, Unavailable.
func (s *Store) DeleteHook(ctx context.Context, id string) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Delete(rctx, s.keys.Hook(id))
	if err != nil {
		return s.wrap(ctx, "delete hook", err)
	}
	if resp.Deleted == 0 {
		return Errorf(NotFound, "hook %q does not exist", id)
	}
	// Its deliveries are dropped as the dispatcher meets them.
	return nil
}

// ListHooks returns every hook, by ID.
func (s *Store) ListHooks(ctx context.Context) ([]Hook, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Hooks(), clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(ctx, "read hooks", err)
	}
	out := make([]Hook, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var h Hook
		if json.Unmarshal(kv.Value, &h) == nil && h.ID == strings.TrimPrefix(string(kv.Key), s.keys.Hooks()) {
			h.Revision = kv.CreateRevision
			out = append(out, h)
		}
	}
	return out, nil
}

// HookCursor returns the revision up to which site changes became
// deliveries, and the store's current revision (what a cursor starts at).
func (s *Store) HookCursor(ctx context.Context) (cursor, current int64, err error) {
	return s.hookCursor(ctx, s.keys.HookCursor())
}

func (s *Store) hookCursor(ctx context.Context, key string) (cursor, current int64, err error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, key)
	if err != nil {
		return 0, 0, s.wrap(ctx, "read the hook cursor", err)
	}
	if len(resp.Kvs) == 1 {
		cursor, err = parseInt64(string(resp.Kvs[0].Value))
		if err != nil {
			return 0, 0, fmt.Errorf("hook cursor: %w", err)
		}
	}
	return cursor, resp.Header.Revision, nil
}

func parseInt64(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a revision", v)
	}
	return n, nil
}

// EnqueueHookDeliveries adds deliveries to the outbox (one already there
// is left as it is: its attempts count) and moves the cursor to cursor,
// under guard (a leader's). The cursor moves in the last transaction, so
// that a failure in between makes the next leader enqueue the same
// deliveries again, which changes nothing.
//
// pending are deploys whose outcome is to be followed (PendingDeploys).
func (s *Store) EnqueueHookDeliveries(ctx context.Context, ds []HookDelivery, pending []HookEvent, cursor int64, guard Guard) error {
	ops, err := s.deliveryOps(ds, pending)
	if err != nil {
		return err
	}
	return s.commitHookOps(ctx, append(ops, clientv3.OpPut(s.keys.HookCursor(), fmt.Sprint(cursor))), guard)
}

// deliveryOps are put-if-absent operations for deliveries and pending
// deploys.
func (s *Store) deliveryOps(ds []HookDelivery, pending []HookEvent) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, 0, len(ds)+len(pending)+1)
	putNew := func(key string, v any) error {
		val, err := marshal(v)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, []clientv3.Op{clientv3.OpPut(key, val)}, nil))
		return nil
	}
	for _, d := range ds {
		if err := putNew(s.keys.outboxKey(d), d); err != nil {
			return nil, err
		}
	}
	for _, e := range pending {
		if err := putNew(s.keys.HookPending()+e.ID, e); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// commitHookOps commits ops under guard, in as many transactions as the
// server's limits need; the last operation goes in the last one.
func (s *Store) commitHookOps(ctx context.Context, ops []clientv3.Op, guard Guard) error {
	for _, chunk := range chunkOps(ops, s.maxOps, maxTxnBytes) {
		if _, _, err := s.fencedTxn(ctx, "enqueue hook deliveries", []Guard{guard}, nil, chunk); err != nil {
			return err
		}
	}
	return nil
}

// HookSent is the prefix of the markers of events sent once only
// (certificate.expiring): <prefix>/hooks/sent/<event id>.
func (k Keys) HookSent() string { return k.Prefix + "/hooks/sent/" }

// EnqueueHookEventOnce enqueues the deliveries of an event unless it was
// enqueued before (a marker under HookSent records it), under guard.
// Without deliveries it records nothing: a hook added later still gets
// the event.
func (s *Store) EnqueueHookEventOnce(ctx context.Context, id string, ds []HookDelivery, guard Guard) error {
	if len(ds) == 0 {
		return nil
	}
	ops, err := s.deliveryOps(ds, nil)
	if err != nil {
		return err
	}
	marker := s.keys.HookSent() + id
	_, _, err = s.fencedTxn(ctx, "enqueue a hook event once", []Guard{guard},
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)}, append(ops, clientv3.OpPut(marker, time.Now().UTC().Format(time.RFC3339))))
	return err
}

// PruneHookSent removes the markers of EnqueueHookEventOnce that keep
// does not hold, under guard.
func (s *Store) PruneHookSent(ctx context.Context, keep map[string]bool, guard Guard) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.HookSent(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return s.wrap(ctx, "read the sent markers", err)
	}
	var ops []clientv3.Op
	for _, kv := range resp.Kvs {
		if !keep[strings.TrimPrefix(string(kv.Key), s.keys.HookSent())] {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
	}
	if len(ops) == 0 {
		return nil
	}
	return s.commitHookOps(ctx, ops, guard)
}

// PendingDeploys returns up to limit deploys whose outcome hooks wait
// for, oldest first.
func (s *Store) PendingDeploys(ctx context.Context, limit int) ([]HookEvent, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.HookPending(), clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, s.wrap(ctx, "read the pending deploys", err)
	}
	out := make([]HookEvent, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e HookEvent
		if json.Unmarshal(kv.Value, &e) != nil || string(kv.Key) != s.keys.HookPending()+e.ID {
			e = HookEvent{ID: strings.TrimPrefix(string(kv.Key), s.keys.HookPending())} // unreadable: resolved with nothing to send
		}
		out = append(out, e)
	}
	return out, nil
}

// ResolvePendingDeploy enqueues the deliveries of a deploy's outcome and
// stops following it, under guard.
func (s *Store) ResolvePendingDeploy(ctx context.Context, id string, ds []HookDelivery, guard Guard) error {
	ops, err := s.deliveryOps(ds, nil)
	if err != nil {
		return err
	}
	return s.commitHookOps(ctx, append(ops, clientv3.OpDelete(s.keys.HookPending()+id)), guard)
}

// Outbox returns up to limit deliveries still to make, oldest event first.
func (s *Store) Outbox(ctx context.Context, limit int) ([]HookDelivery, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Outbox(), clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, s.wrap(ctx, "read the hook outbox", err)
	}
	out := make([]HookDelivery, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var d HookDelivery
		if json.Unmarshal(kv.Value, &d) == nil && string(kv.Key) == s.keys.outboxKey(d) {
			out = append(out, d)
		} else {
			out = append(out, HookDelivery{Hook: "", Event: HookEvent{ID: strings.TrimPrefix(string(kv.Key), s.keys.Outbox())}, LastError: "unreadable record"})
		}
	}
	return out, nil
}

// RecordHookAttempt logs one attempt and, under guard, removes the
// delivery from the outbox (done) or stores it with its next attempt.
// A delivery with an empty Hook (an unreadable record, as Outbox returns
// it) is removed by its event ID alone.
func (s *Store) RecordHookAttempt(ctx context.Context, d HookDelivery, entry HookLogEntry, done bool, guard Guard) error {
	var ops []clientv3.Op
	switch {
	case d.Hook == "":
		ops = append(ops, clientv3.OpDelete(s.keys.Outbox()+d.Event.ID))
	case done:
		ops = append(ops, clientv3.OpDelete(s.keys.outboxKey(d)))
	default:
		val, err := marshal(d)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.keys.outboxKey(d), val))
	}
	if !entry.Time.IsZero() {
		val, err := marshal(entry)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.keys.hookLogKey(entry), val))
	}
	_, _, err := s.fencedTxn(ctx, "record a hook delivery", []Guard{guard}, nil, ops)
	return err
}

// HookLog returns the newest limit entries of the delivery log, oldest
// first.
func (s *Store) HookLog(ctx context.Context, limit int) ([]HookLogEntry, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.HookLog(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, s.wrap(ctx, "read the hook log", err)
	}
	out := make([]HookLogEntry, 0, len(resp.Kvs))
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var e HookLogEntry
		if json.Unmarshal(resp.Kvs[i].Value, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// TrimHookLog keeps the newest keep entries of the delivery log, under
// guard.
func (s *Store) TrimHookLog(ctx context.Context, keep int, guard Guard) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	prefix := s.keys.HookLog()
	count, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return s.wrap(ctx, "read the hook log", err)
	}
	excess := count.Count - int64(keep)
	if excess <= 0 {
		return nil
	}
	resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(excess))
	if err != nil || len(resp.Kvs) == 0 {
		return s.wrap(ctx, "read the hook log", err)
	}
	end := string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	_, _, err = s.fencedTxn(ctx, "trim the hook log", []Guard{guard}, nil, []clientv3.Op{clientv3.OpDelete(prefix, clientv3.WithRange(end))})
	return err
}

// SiteChange is one change of a site record: Prev is nil for a new site,
// Next nil for a deleted one. A record that does not decode is nil.
type SiteChange struct {
	Domain     string
	Prev, Next *Site
	Revision   int64
}

// KVChange is one change of a key below a watched prefix: Name is the key
// without the prefix; Prev is nil for a new key, Next nil for a deleted
// one.
type KVChange struct {
	Name       string
	Prev, Next []byte
	Revision   int64
}

// ErrHistoryGone is returned by the watches of changes when etcd no
// longer has the history after from (it was compacted).
var ErrHistoryGone = errors.New("state: the history of changes was compacted")

// WatchSiteChanges calls fn with the site changes after revision from, in
// order (changes to or from a record that does not decode are left out),
// one batch per etcd revision range it receives, with the revision
// the batch reaches (what a cursor may move to once fn succeeded). It
// returns when ctx ends (nil), fn fails, the watch fails, or the history
// is gone (ErrHistoryGone).
func (s *Store) WatchSiteChanges(ctx context.Context, from int64, fn func(changes []SiteChange, through int64) error) error {
	return s.watchChanges(ctx, s.keys.Sites(), from, func(kvs []KVChange, through int64) error {
		changes := make([]SiteChange, 0, len(kvs))
		for _, kv := range kvs {
			c := SiteChange{Domain: kv.Name, Revision: kv.Revision}
			var err error
			if c.Prev, err = decodeChanged(kv.Prev, 0); err != nil {
				continue
			}
			if c.Next, err = decodeChanged(kv.Next, kv.Revision); err != nil {
				continue
			}
			changes = append(changes, c)
		}
		return fn(changes, through)
	})
}

// decodeChanged decodes one side of a site change: nil for none (a new
// or deleted key). A record that does not decode is an error, so that the
// change is left out rather than read as a creation or a deletion: the
// nodes report such a record, it is no event of its own.
func decodeChanged(value []byte, rev int64) (*Site, error) {
	if value == nil {
		return nil, nil
	}
	var site Site
	if err := json.Unmarshal(value, &site); err != nil {
		return nil, err
	}
	site.Revision = rev
	return &site, nil
}

// WatchPrefixChanges is WatchSiteChanges for any prefix of the store's
// (the node records, the certificates, the ACME status), undecoded.
func (s *Store) WatchPrefixChanges(ctx context.Context, prefix string, from int64, fn func(changes []KVChange, through int64) error) error {
	if !strings.HasPrefix(prefix, s.keys.Prefix+"/") {
		return fmt.Errorf("watch %s: not below the store's prefix", prefix)
	}
	return s.watchChanges(ctx, prefix, from, fn)
}

func (s *Store) watchChanges(ctx context.Context, prefix string, from int64, fn func(changes []KVChange, through int64) error) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(from+1))
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) || resp.CompactRevision > 0 {
				return ErrHistoryGone
			}
			return s.wrap(ctx, "watch "+prefix, err)
		}
		changes := make([]KVChange, 0, len(resp.Events))
		for _, ev := range resp.Events {
			c := KVChange{Name: strings.TrimPrefix(string(ev.Kv.Key), prefix), Revision: ev.Kv.ModRevision}
			if ev.PrevKv != nil {
				c.Prev = ev.PrevKv.Value
			}
			if ev.Type == clientv3.EventTypePut {
				c.Next = ev.Kv.Value
			}
			changes = append(changes, c)
		}
		if err := fn(changes, resp.Header.Revision); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return Errorf(Unavailable, "the watch of %s ended", prefix)
}

// HookCursorOf is HookCursor for the cursor of another source of events
// (named as in HookSourceCursor).
func (s *Store) HookCursorOf(ctx context.Context, source string) (cursor, current int64, err error) {
	return s.hookCursor(ctx, s.keys.HookSourceCursor(source))
}

// EnqueueHookDeliveriesOf is EnqueueHookDeliveries for another source of
// events: it moves that source's cursor.
func (s *Store) EnqueueHookDeliveriesOf(ctx context.Context, source string, ds []HookDelivery, cursor int64, guard Guard) error {
	ops, err := s.deliveryOps(ds, nil)
	if err != nil {
		return err
	}
	return s.commitHookOps(ctx, append(ops, clientv3.OpPut(s.keys.HookSourceCursor(source), fmt.Sprint(cursor))), guard)
}

// LastSiteChange returns the highest modification revision among the
// site records (0 without sites): whether a site changed after a revision
// whose history is gone (a deletion leaves no trace here).
func (s *Store) LastSiteChange(ctx context.Context) (int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Sites(), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return 0, s.wrap(ctx, "read the sites", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].ModRevision, nil
}
