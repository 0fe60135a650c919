package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/model"
)

// HashToken returns the hex SHA-256 of an API token: the form in which
// tokens are kept in etcd and compared.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Token is what the fleet keeps of an API token.
type Token = model.Token

// AddTokenHash makes every node of the fleet accept the token with the
// given hash as an admin token labelled label. Adding a hash that is
// there already changes nothing.
func (s *Store) AddTokenHash(ctx context.Context, hash, label string) error {
	err := s.CreateToken(ctx, hash, Token{Role: model.RoleAdmin, Label: label, CreatedAt: time.Now().UTC()})
	if ErrorCode(err) == Exists {
		return nil
	}
	return err
}

// CreateToken records the token with the given hash; its ID is derived
// from the hash. A hash recorded already is an Exists *Error.
func (s *Store) CreateToken(ctx context.Context, hash string, t Token) error {
	if err := ValidateSHA256(hash); err != nil {
		return err
	}
	t.ID, t.LastUsed = model.TokenID(hash), nil
	val, err := marshal(t)
	if err != nil {
		return err
	}
	key := s.keys.Tokens() + hash
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, val)).Commit()
	if err != nil {
		return s.wrap(ctx, "add token", err)
	}
	if !resp.Succeeded {
		return Errorf(Exists, "the token exists already")
	}
	return nil
}

// Principals returns every credential the fleet accepts, by the hex
// SHA-256 of its token: the API tokens, and the credentials of the live
// nodes (role node, which end with their node's lease). A record that
// does not decode is left out: it grants nothing.
func (s *Store) Principals(ctx context.Context) (map[string]Token, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).Then(
		clientv3.OpGet(s.keys.Tokens(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.NodeCredentials(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, s.wrap(ctx, "read tokens", err)
	}
	out := map[string]Token{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		hash := strings.TrimPrefix(string(kv.Key), s.keys.Tokens())
		var t Token
		if json.Unmarshal(kv.Value, &t) != nil || ValidateSHA256(hash) != nil {
			continue
		}
		t.ID = model.TokenID(hash)
		out[hash] = t
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), s.keys.NodeCredentials())
		hash := string(kv.Value)
		if ValidateSHA256(hash) != nil || kv.Lease == 0 {
			continue // a node credential lives only as long as its node's lease
		}
		out[hash] = Token{ID: "node:" + name, Role: model.RoleNode, Label: "credential of node " + name}
	}
	return out, nil
}

// Tokens lists the API tokens, with when each was last used, sorted by
// creation.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).Then(
		clientv3.OpGet(s.keys.Tokens(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.TokenUsage(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, s.wrap(ctx, "read tokens", err)
	}
	used := map[string]time.Time{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if at, err := time.Parse(time.RFC3339, string(kv.Value)); err == nil {
			used[strings.TrimPrefix(string(kv.Key), s.keys.TokenUsage())] = at
		}
	}
	out := []Token{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		hash := strings.TrimPrefix(string(kv.Key), s.keys.Tokens())
		var t Token
		if json.Unmarshal(kv.Value, &t) != nil {
			continue
		}
		t.ID = model.TokenID(hash)
		if at, ok := used[t.ID]; ok {
			t.LastUsed = &at
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// RevokeToken removes the token with the given ID; every node refuses it
// once it sees the removal. An unknown ID is a NotFound *Error.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Tokens(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return s.wrap(ctx, "read tokens", err)
	}
	for _, kv := range resp.Kvs {
		if model.TokenID(strings.TrimPrefix(string(kv.Key), s.keys.Tokens())) != id {
			continue
		}
		if _, err := s.cli.Txn(rctx).Then(clientv3.OpDelete(string(kv.Key)), clientv3.OpDelete(s.keys.TokenUsage()+id)).Commit(); err != nil {
			return s.wrap(ctx, "revoke token", err)
		}
		return nil
	}
	return Errorf(NotFound, "no token has the ID %q", id)
}

// NoteTokensUsed records when each token of used (by ID) was last used.
func (s *Store) NoteTokensUsed(ctx context.Context, used map[string]time.Time) error {
	var ops []clientv3.Op
	for id, at := range used {
		ops = append(ops, clientv3.OpPut(s.keys.TokenUsage()+id, at.UTC().Format(time.RFC3339)))
	}
	return s.commitInChunks(ctx, "note token use", ops)
}

// WatchAuth returns a channel that receives a value after each change to
// the tokens or node credentials, until ctx ends (then it is closed). A
// broken watch is resumed after a pause and signals once, since changes
// may have been missed; a change may be signalled more than once.
func (s *Store) WatchAuth(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for first := true; ctx.Err() == nil; first = false {
			if !first {
				select { // changes may have been missed meanwhile
				case out <- struct{}{}:
				default:
				}
			}
			wctx, cancel := context.WithCancel(ctx)
			for resp := range s.cli.Watch(clientv3.WithRequireLeader(wctx), s.keys.Prefix+"/auth/", clientv3.WithPrefix()) {
				if resp.Err() != nil {
					break
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return out
}

// SecretsKeyID is the key that records the ID of the cluster key that
// seals this fleet's secrets.
func (k Keys) SecretsKeyID() string { return k.Prefix + "/secrets/keyid" }

// ClaimKeyID records id as the fleet's cluster key ID if none is recorded
// yet, and returns the recorded one: a node whose key ID differs holds the
// wrong secrets.key.
func (s *Store) ClaimKeyID(ctx context.Context, id string) (string, error) {
	key := s.keys.SecretsKeyID()
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, id)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return "", s.wrap(ctx, "check the cluster key", err)
	}
	if resp.Succeeded {
		return id, nil
	}
	return string(resp.Responses[0].GetResponseRange().Kvs[0].Value), nil
}
