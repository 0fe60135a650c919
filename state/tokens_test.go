package state_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// Records written into etcd behind the API's back grant nothing unless
// they are well formed: a token record that does not decode or whose key
// is not a digest, a node credential that is not a digest or is not on a
// lease (it would outlive every node).
func TestHostileCredentialRecordsGrantNothing(t *testing.T) {
	s, e := newStore(t)
	cli := e.Client(t)
	ctx := context.Background()
	good := state.HashToken("good")
	if err := s.CreateToken(ctx, good, model.Token{Role: model.RoleRead, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	keys := s.Keys()
	for key, value := range map[string]string{
		keys.Tokens() + state.HashToken("garbage"): "{not json",
		keys.Tokens() + "not-a-digest":             `{"role":"admin"}`,
		keys.Tokens() + strings.ToUpper(good[:64]): `{"role":"admin"}`,
		keys.NodeCredentials() + "leaseless":       state.HashToken("forever"),
		keys.NodeCredentials() + "bad":             "not-a-digest",
	} {
		if _, err := cli.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, keys.NodeCredentials()+"live", state.HashToken("node-secret"), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Principals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[good].RoleOf() != model.RoleRead || got[state.HashToken("node-secret")].Role != model.RoleNode {
		t.Fatalf("principals: %+v", got)
	}
	// An unknown ID revokes nothing.
	if err := s.RevokeToken(ctx, "tok_0000000000000000"); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("revoke of an unknown ID: %v", err)
	}
}
