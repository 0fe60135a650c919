package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HashToken returns the hex SHA-256 of an API token: the form in which
// tokens are kept in etcd and compared.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

type tokenRecord struct {
	Label     string    `json:"label"`
	CreatedAt time.Time `json:"createdAt"`
}

// AddTokenHash makes every node of the fleet accept the token with the given
// hash. Adding a hash that is there already changes nothing.
func (s *Store) AddTokenHash(ctx context.Context, hash, label string) error {
	val, err := marshal(tokenRecord{Label: label, CreatedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	key := s.keys.Tokens() + hash
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, val)).Commit()
	return s.wrap(ctx, "add token", err)
}

// TokenHashes returns the hashes of the tokens every node accepts.
func (s *Store) TokenHashes(ctx context.Context) (map[string]bool, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Tokens(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, s.wrap(ctx, "read tokens", err)
	}
	out := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), s.keys.Tokens())] = true
	}
	return out, nil
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
