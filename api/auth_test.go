package api

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// A token's use is noted, and "token list" shows when it was last used;
// an unused token shows none.
func TestTokenLastUsed(t *testing.T) {
	e := etcdtest.New(t)
	store, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: "/auth-test", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tok := range []string{"used-token", "idle-token"} {
		if err := store.CreateToken(ctx, state.HashToken(tok), model.Token{Role: model.RoleRead, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	a := NewAuth(nil, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a.Refresh(ctx)
	p, err := a.Authenticate(ctx, "used-token")
	if err != nil || p.Role != model.RoleRead {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	a.flushUsage(ctx)
	l, err := store.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range l {
		switch tok.ID {
		case model.TokenID(state.HashToken("used-token")):
			if tok.LastUsed == nil || time.Since(*tok.LastUsed) > time.Minute {
				t.Errorf("used token: last used %v", tok.LastUsed)
			}
		default:
			if tok.LastUsed != nil {
				t.Errorf("idle token: last used %v", tok.LastUsed)
			}
		}
	}
	// Nothing used since: nothing is written.
	rev := func() int64 {
		resp, err := e.Client(t).Get(ctx, "/none")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	before := rev()
	a.flushUsage(ctx)
	if after := rev(); after != before {
		t.Fatalf("a flush with nothing used wrote to etcd: %d -> %d", before, after)
	}
}

// A configured token is an admin token, and an unknown or empty one is
// refused.
func TestAuthenticateStaticAndUnknown(t *testing.T) {
	a := NewAuth([]string{"configured"}, nil, nil)
	if p, err := a.Authenticate(context.Background(), "configured"); err != nil || p.Role != model.RoleAdmin || p.ID == "" {
		t.Fatalf("configured token: %+v %v", p, err)
	}
	for _, tok := range []string{"", "other"} {
		if _, err := a.Authenticate(context.Background(), tok); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
}
