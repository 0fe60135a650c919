package state

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The ACME records are outside the desired state (Keys.ACMECache,
// Keys.ACMEStatus): the ACME client's cache, its values sealed by the
// caller, and the leader's issuance status per name, as the caller
// encodes it. Every node reads them; only the leader writes, under its
// guard. Writing them does not move the state revision.

// validACMEName checks the name of an ACME record: it becomes the last
// segment of an etcd key.
func validACMEName(name string) error {
	if name == "" || len(name) > 512 || strings.ContainsAny(name, "/\x00") {
		return Errorf(Invalid, "acme record name %.60q: must be 1 to 512 bytes without '/' or NUL", name)
	}
	return nil
}

// GetACMECache returns the cached value of name; ok is false when there
// is none.
func (s *Store) GetACMECache(ctx context.Context, name string) (value string, ok bool, err error) {
	if err := validACMEName(name); err != nil {
		return "", false, err
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.ACMECache()+name)
	if err != nil {
		return "", false, s.wrap(ctx, "read acme cache "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// PutACMECache stores the value of name, under guard.
func (s *Store) PutACMECache(ctx context.Context, name, value string, guard Guard) error {
	return s.putACME(ctx, "write acme cache", s.keys.ACMECache(), name, value, guard)
}

// DeleteACMECache removes the value of name, under guard.
func (s *Store) DeleteACMECache(ctx context.Context, name string, guard Guard) error {
	return s.deleteACME(ctx, "delete acme cache", s.keys.ACMECache(), name, guard)
}

// ACMEStatuses returns every issuance status record by name.
func (s *Store) ACMEStatuses(ctx context.Context) (map[string][]byte, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	prefix := s.keys.ACMEStatus()
	resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(ctx, "read acme status", err)
	}
	out := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), prefix)] = kv.Value
	}
	return out, nil
}

// PutACMEStatus stores the issuance status of name, under guard.
func (s *Store) PutACMEStatus(ctx context.Context, name string, value []byte, guard Guard) error {
	return s.putACME(ctx, "write acme status", s.keys.ACMEStatus(), name, string(value), guard)
}

// DeleteACMEStatus removes the issuance status of name, under guard.
func (s *Store) DeleteACMEStatus(ctx context.Context, name string, guard Guard) error {
	return s.deleteACME(ctx, "delete acme status", s.keys.ACMEStatus(), name, guard)
}

func (s *Store) putACME(ctx context.Context, what, prefix, name, value string, guard Guard) error {
	if err := validACMEName(name); err != nil {
		return err
	}
	if _, _, err := s.fencedTxn(ctx, what+" "+name, []Guard{guard}, nil, []clientv3.Op{clientv3.OpPut(prefix+name, value)}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *Store) deleteACME(ctx context.Context, what, prefix, name string, guard Guard) error {
	if err := validACMEName(name); err != nil {
		return err
	}
	if _, _, err := s.fencedTxn(ctx, what+" "+name, []Guard{guard}, nil, []clientv3.Op{clientv3.OpDelete(prefix + name)}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
