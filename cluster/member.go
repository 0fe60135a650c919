package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// Defaults for MemberOptions.
const (
	// DefaultTTL is the lease TTL: a node that vanishes drops out of the
	// registry, and a dead leader is replaced, within about this long.
	DefaultTTL = 10 * time.Second
	// DefaultPublishInterval is how often a node republishes its record.
	DefaultPublishInterval = 2 * time.Second
	// DefaultRetention is how long the leader keeps the last-seen record of
	// a node that is gone.
	DefaultRetention = 24 * time.Hour
)

// ErrNameInUse is returned when a live node with another data directory
// holds the name this node wants.
var ErrNameInUse = errors.New("cluster: node name in use")

// LeaderTask is work that must run on one node only. It runs while this
// node leads, under a context that ends with the leadership, and fences
// its writes with f. A task that returns early is restarted after a pause
// while the leadership lasts.
type LeaderTask func(ctx context.Context, f Fence) error

// MemberOptions configure a Member.
type MemberOptions struct {
	Client *clientv3.Client
	Keys   state.Keys
	Name   string
	// ID identifies this node's data directory.
	ID string
	// TTL of the node's lease; default DefaultTTL. Whole seconds.
	TTL time.Duration
	// PublishInterval; default DefaultPublishInterval.
	PublishInterval time.Duration
	// DisallowLeadership keeps the node out of the election.
	DisallowLeadership bool
	// Record returns the node's current status; Member fills in the
	// identity and leadership fields.
	Record func() NodeRecord
	// CredentialHash, when set, is the SHA-256 (hex) of the credential the
	// node presents to its peers: registered under
	// <prefix>/auth/nodes/<name> on the node's lease, it dies with the
	// node's record.
	CredentialHash string
	// Changed, if set, signals that the record changed (the node serves a
	// new state): each signal publishes it at once, as Notify does.
	Changed <-chan struct{}
	// Tasks run on the leader.
	Tasks []LeaderTask
	// Timeout bounds each etcd request; default state.DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Member is this node's membership in the fleet: its status record on a
// lease, and its part in the leader election.
type Member struct {
	opts    MemberOptions
	log     *slog.Logger
	started time.Time
	leader  atomic.Bool
	lastErr atomic.Value  // string
	notify  chan struct{} // Notify's dirty bit
}

// NewMember returns a Member; it does not contact etcd.
func NewMember(opts MemberOptions) (*Member, error) {
	if opts.Client == nil || opts.Name == "" || opts.ID == "" || opts.Record == nil {
		return nil, errors.New("cluster: Client, Name, ID and Record are required")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.TTL < time.Second {
		return nil, fmt.Errorf("cluster: lease TTL %s is below one second", opts.TTL)
	}
	if opts.PublishInterval <= 0 {
		opts.PublishInterval = DefaultPublishInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = state.DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Member{opts: opts, log: opts.Logger, started: time.Now().UTC(), notify: make(chan struct{}, 1)}, nil
}

// IsLeader reports whether this node leads now.
func (m *Member) IsLeader() bool { return m.leader.Load() }

// LastError is the latest registration problem, "" once registered.
func (m *Member) LastError() string {
	s, _ := m.lastErr.Load().(string)
	return s
}

func (m *Member) nodeKey() string   { return m.opts.Keys.Nodes() + m.opts.Name }
func (m *Member) memberKey() string { return m.opts.Keys.Members() + m.opts.Name }

// CheckName fails with ErrNameInUse when a live node with another data
// directory holds this node's name. When etcd cannot be reached in time it
// returns nil: the check is repeated when the node registers.
func (m *Member) CheckName(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	resp, err := m.opts.Client.Get(ctx, m.nodeKey())
	if err != nil {
		m.log.Warn("could not check the node name against the registry; will check when etcd answers", "err", err)
		return nil
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return m.conflict(resp.Kvs[0].Value)
}

func (m *Member) conflict(value []byte) error {
	var other NodeRecord
	if err := json.Unmarshal(value, &other); err != nil || other.ID == m.opts.ID {
		return nil // ours from an earlier run, or unreadable: take it over
	}
	return fmt.Errorf("%w: a live node named %q (api %s, started %s) is registered with another data directory; choose another nodeName",
		ErrNameInUse, m.opts.Name, other.APIAddress, other.StartedAt.Format(time.RFC3339))
}

// Run keeps the node registered and, unless leadership is disallowed,
// campaigns for leadership, until ctx ends. A lost lease (etcd unreachable
// for longer than the TTL) ends the leadership at once; the node registers
// again when etcd answers. When ctx ends, the node resigns and revokes its
// lease, so it leaves the registry and a new leader is elected at once.
func (m *Member) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(m.opts.Client, concurrency.WithTTL(int(m.opts.TTL/time.Second)), concurrency.WithContext(ctx))
		if err == nil {
			err = m.serve(ctx, sess)
			m.closeSession(sess)
		}
		if ctx.Err() != nil {
			return nil
		}
		m.setErr(err)
		m.log.Warn("lost the etcd session; registering again", "err", err)
		if !ctxutil.Sleep(ctx, delay) {
			return nil
		}
		delay = min(2*delay, 5*time.Second)
	}
	return nil
}

func (m *Member) setErr(err error) {
	if err == nil {
		m.lastErr.Store("")
		return
	}
	m.lastErr.Store(err.Error())
}

// closeSession revokes the lease; it uses a fresh context because the
// node's may have ended.
func (m *Member) closeSession(sess *concurrency.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = m.opts.Client.Revoke(ctx, sess.Lease())
	sess.Orphan()
}

// serve registers under sess, then publishes and campaigns until the
// session ends or ctx does.
func (m *Member) serve(ctx context.Context, sess *concurrency.Session) error {
	if err := m.register(ctx, sess); err != nil {
		return err
	}
	m.setErr(nil)
	m.log.Info("registered in the fleet", "node", m.opts.Name, "lease", fmt.Sprintf("%x", sess.Lease()))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	var wg sync.WaitGroup
	if !m.opts.DisallowLeadership {
		wg.Go(func() { m.campaign(sctx, sess) })
	}
	err := m.publish(sctx, sess)
	cancel()
	wg.Wait()
	if ctx.Err() == nil && err == nil {
		err = errors.New("lease expired")
	}
	return err
}

// register writes the node's record under the session's lease, refusing
// a name held by a live node with another data directory.
func (m *Member) register(ctx context.Context, sess *concurrency.Session) error {
	val, err := m.recordValue()
	if err != nil {
		return err
	}
	key := m.nodeKey()
	puts := []clientv3.Op{clientv3.OpPut(key, val, clientv3.WithLease(sess.Lease())), clientv3.OpPut(m.memberKey(), val)}
	if m.opts.CredentialHash != "" {
		puts = append(puts, clientv3.OpPut(m.opts.Keys.NodeCredentials()+m.opts.Name, m.opts.CredentialHash, clientv3.WithLease(sess.Lease())))
	}
	rctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	resp, err := m.opts.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(puts...).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	kv := resp.Responses[0].GetResponseRange().Kvs[0]
	if err := m.conflict(kv.Value); err != nil {
		return err
	}
	// Our own record from before a restart: take it over.
	resp, err = m.opts.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(puts...).Commit()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("register: the node record changed while it was taken over")
	}
	return nil
}

func (m *Member) recordValue() (string, error) { return encodeRecord(m.record(), time.Now().UTC()) }

// encodeRecord encodes r as updated at (zero: without a time, to compare
// contents).
func encodeRecord(r NodeRecord, at time.Time) (string, error) {
	r.UpdatedAt = at
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode node record: %w", err)
	}
	return string(b), nil
}

// record returns the node's record without its time.
func (m *Member) record() NodeRecord {
	r := m.opts.Record()
	r.Name, r.ID, r.StartedAt = m.opts.Name, m.opts.ID, m.started
	r.Leader, r.DisallowLeadership = m.IsLeader(), m.opts.DisallowLeadership
	return r
}

// Notify asks for the node's record to be published now, e.g. because
// the node serves a new state; bursts coalesce. It never blocks.
func (m *Member) Notify() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// publish publishes the node's record when notified, and when it
// changed (checked every PublishInterval); only while the key is still
// bound to this session's lease, and the last-seen copy with it. The
// lease alone keeps the node live, so an idle node writes nothing. It
// returns nil when ctx ends and an error if the record was lost.
func (m *Member) publish(ctx context.Context, sess *concurrency.Session) error {
	t := time.NewTicker(m.opts.PublishInterval)
	defer t.Stop()
	var last string // the last record written, without its time
	for {
		notified := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.notify:
			notified = true
		case <-m.opts.Changed:
			notified = true
		}
		r := m.record()
		content, err := encodeRecord(r, time.Time{})
		if err != nil {
			return err
		}
		if !notified && content == last {
			continue
		}
		now := time.Now().UTC()
		val, err := encodeRecord(r, now)
		if err != nil {
			return err
		}
		if err := m.publishOnce(ctx, sess, val); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errRecordLost) {
				return err
			}
			m.log.Debug("could not publish the node record", "err", err)
			continue
		}
		last = content
	}
}

var errRecordLost = errors.New("the node record is no longer bound to this node's lease")

func (m *Member) publishOnce(ctx context.Context, sess *concurrency.Session, val string) error {
	rctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	resp, err := m.opts.Client.Txn(rctx).
		If(clientv3.Compare(clientv3.LeaseValue(m.nodeKey()), "=", sess.Lease())).
		Then(clientv3.OpPut(m.nodeKey(), val, clientv3.WithLease(sess.Lease())), clientv3.OpPut(m.memberKey(), val)).
		Commit()
	if err != nil {
		return fmt.Errorf("publish node record: %w", err)
	}
	if !resp.Succeeded {
		return errRecordLost
	}
	return nil
}
