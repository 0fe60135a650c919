package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultPrefix is the etcd key prefix when none is configured.
const DefaultPrefix = "/sitefleet"

// DefaultTimeout bounds every etcd request when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultMaxTxnOps is etcd's default limit of operations in one transaction.
const DefaultMaxTxnOps = 128

// maxRetries bounds the internal optimistic-concurrency retries of a write
// whose transaction lost a race that does not concern the caller.
const maxRetries = 10

// Options configure a Store.
type Options struct {
	// Client is the etcd client. Required.
	Client *clientv3.Client
	// Prefix is the key prefix of this fleet; default DefaultPrefix.
	Prefix string
	// Timeout bounds each etcd request; default DefaultTimeout.
	Timeout time.Duration
	// MaxTxnOps is the most operations the etcd server accepts in one
	// transaction; default DefaultMaxTxnOps.
	MaxTxnOps int
}

// Store reads and writes the desired state in etcd. It is safe for
// concurrent use.
type Store struct {
	cli     *clientv3.Client
	keys    Keys
	timeout time.Duration
	maxOps  int
}

// NewStore returns a Store. It does not contact etcd.
func NewStore(opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("state: nil etcd client")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if err := ValidatePrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = DefaultMaxTxnOps
	}
	if opts.MaxTxnOps < 8 {
		return nil, fmt.Errorf("state: MaxTxnOps %d is below the minimum of 8", opts.MaxTxnOps)
	}
	return &Store{cli: opts.Client, keys: Keys{Prefix: strings.TrimSuffix(opts.Prefix, "/")}, timeout: opts.Timeout, maxOps: opts.MaxTxnOps}, nil
}

// ValidatePrefix checks an etcd key prefix: it must start with "/" and hold
// no whitespace.
func ValidatePrefix(p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("state: key prefix %q must start with / and contain no spaces or control characters", p)
	}
	return nil
}

// Keys returns the key layout of this store.
func (s *Store) Keys() Keys { return s.keys }

// Timeout returns the bound applied to each etcd request.
func (s *Store) Timeout() time.Duration { return s.timeout }

// Keys is the etcd key layout under one prefix.
type Keys struct{ Prefix string }

// State is the prefix of all desired state; a watch on it sees every change.
func (k Keys) State() string { return k.Prefix + "/state/" }

// Sites is the prefix of the site keys.
func (k Keys) Sites() string { return k.Prefix + "/state/sites/" }

// Site is the key of one site.
func (k Keys) Site(domain string) string { return k.Sites() + domain }

// Names is the prefix of the name index: one key per domain or alias, whose
// value is the domain of the site that owns it.
func (k Keys) Names() string { return k.Prefix + "/state/names/" }

// Name is the index key of one host name.
func (k Keys) Name(name string) string { return k.Names() + name }

// Meta is touched by every state write, so that a whole-state import can
// detect any change since a revision, deletions included.
func (k Keys) Meta() string { return k.Prefix + "/state/meta" }

// Pending marks an import that spans several transactions and has not
// completed; nodes do not apply a state while it exists.
func (k Keys) Pending() string { return k.Prefix + "/state/pending" }

// Nodes is the prefix of the live nodes' status records, each bound to its
// node's lease.
func (k Keys) Nodes() string { return k.Prefix + "/nodes/" }

// Members is the prefix of the nodes' last-seen records, which outlive
// their leases so that a vanished node still shows in the cluster status.
func (k Keys) Members() string { return k.Prefix + "/members/" }

// Leader is the prefix of the leader election.
func (k Keys) Leader() string { return k.Prefix + "/leader/" }

// Tokens is the prefix of the API token hashes every node accepts.
func (k Keys) Tokens() string { return k.Prefix + "/auth/tokens/" }

// NodeCredentials is the prefix of the nodes' credentials towards their
// peers: <prefix>/auth/nodes/<name> holds the hash of the node's
// credential, on the node's lease.
func (k Keys) NodeCredentials() string { return k.Prefix + "/auth/nodes/" }

// TokenUsage is the prefix of when each token was last used, by ID; kept
// apart from the tokens so that noting a use does not wake every node's
// watch of them.
func (k Keys) TokenUsage() string { return k.Prefix + "/usage/tokens/" }

// ACMECache is the prefix of the ACME client's cache (account key,
// certificates, challenge tokens); ACMEStatus that of the leader's
// issuance status per name. Both are outside state/: writing them does
// not move the state revision.
func (k Keys) ACMECache() string  { return k.Prefix + "/acme/cache/" }
func (k Keys) ACMEStatus() string { return k.Prefix + "/acme/status/" }

// ctx bounds one etcd request by the store's timeout.
func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// wrap turns an etcd failure into an Unavailable *Error when the store could
// not be reached in time, and adds context otherwise. A cancellation of the
// caller's own context is returned as it is.
func (s *Store) wrap(parent context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if parent.Err() != nil {
		return fmt.Errorf("%s: %w", what, parent.Err())
	}
	if IsUnavailable(err) {
		return &Error{Code: Unavailable, Message: fmt.Sprintf("the state store (etcd) is unreachable: %s did not complete within %s", what, s.timeout), Err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// IsUnavailable reports whether err means etcd could not be reached or has
// no leader, as opposed to a request it refused.
func IsUnavailable(err error) bool {
	if ErrorCode(err) == Unavailable {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	switch status.Code(errors.Unwrap(err)) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	return string(b), nil
}

type meta struct {
	UpdatedAt time.Time `json:"updatedAt"`
}

func (s *Store) touchMeta() (clientv3.Op, error) {
	v, err := marshal(meta{UpdatedAt: time.Now().UTC()})
	return clientv3.OpPut(s.keys.Meta(), v), err
}

// MetaTime returns the time of the last state change recorded in the meta
// key's value, or the zero time if it cannot be read.
func MetaTime(value []byte) time.Time {
	var m meta
	if json.Unmarshal(value, &m) != nil {
		return time.Time{}
	}
	return m.UpdatedAt
}
