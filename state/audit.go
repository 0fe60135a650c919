package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/model"
)

// AuditEntry records one change made through the API.
type AuditEntry = model.AuditEntry

// Audit returns the prefix of the audit trail: <prefix>/audit/<time>-<node>-<n>,
// the time as 20 digits of Unix nanoseconds so that keys sort by time.
func (k Keys) Audit() string { return k.Prefix + "/audit/" }

func (k Keys) auditKey(at time.Time, node string, n int) string {
	return fmt.Sprintf("%s%020d-%s-%d", k.Audit(), at.UnixNano(), node, n)
}

// AppendAudit adds entries to the audit trail, in as few transactions as
// the server's limits allow.
func (s *Store) AppendAudit(ctx context.Context, entries []AuditEntry) error {
	ops := make([]clientv3.Op, 0, len(entries))
	for i, e := range entries {
		val, err := marshal(e)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(s.keys.auditKey(e.Time, e.Node, i), val))
	}
	return s.commitInChunks(ctx, "record audit entries", ops)
}

// ListAudit returns up to limit entries of the audit trail at or after
// since, oldest first; with more, the newest limit of them.
func (s *Store) ListAudit(ctx context.Context, since time.Time, limit int) ([]AuditEntry, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	from := s.keys.Audit()
	if !since.IsZero() {
		from = fmt.Sprintf("%s%020d", s.keys.Audit(), max(since.UnixNano(), 0))
	}
	resp, err := s.cli.Get(rctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.keys.Audit())),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, s.wrap(ctx, "read the audit trail", err)
	}
	out := make([]AuditEntry, 0, len(resp.Kvs))
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var e AuditEntry
		if json.Unmarshal(resp.Kvs[i].Value, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// TrimAudit removes, under guard (a leader's), the entries older than
// maxAge and all but the newest keep entries.
func (s *Store) TrimAudit(ctx context.Context, keep int, maxAge time.Duration, guard Guard) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	prefix := s.keys.Audit()
	end := fmt.Sprintf("%s%020d", prefix, time.Now().Add(-maxAge).UnixNano())
	// Counts first: a trail within its bounds costs two counts, no write.
	counts, err := s.cli.Txn(rctx).Then(
		clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(prefix, clientv3.WithRange(end), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return s.wrap(ctx, "read the audit trail", err)
	}
	excess := counts.Responses[0].GetResponseRange().Count - int64(keep)
	if excess <= 0 && counts.Responses[1].GetResponseRange().Count == 0 {
		return nil
	}
	if excess > 0 {
		// The excess oldest go, and with them any older than maxAge.
		resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(excess))
		if err != nil {
			return s.wrap(ctx, "read the audit trail", err)
		}
		if n := len(resp.Kvs); n > 0 {
			if k := string(resp.Kvs[n-1].Key) + "\x00"; k > end {
				end = k
			}
		}
	}
	if _, _, err := s.fencedTxn(ctx, "trim the audit trail", []Guard{guard}, nil, []clientv3.Op{clientv3.OpDelete(prefix, clientv3.WithRange(end))}); err != nil {
		return fmt.Errorf("trim the audit trail: %w", err)
	}
	return nil
}
