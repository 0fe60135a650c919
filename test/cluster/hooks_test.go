package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/hooks"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// TestHookDeliverySurvivesLeaderKill: the leader is SIGKILLed while the
// receiver holds its delivery; the next leader delivers the event again,
// with the same idempotency key and a valid signature. A hook on the
// nodes hears the killed node leave and, restarted, join again.
func TestHookDeliverySurvivesLeaderKill(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	var (
		mu     sync.Mutex
		keys   []string
		secret []byte
		held   = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e model.HookEvent
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body %q: %v", body, err)
		}
		mu.Lock()
		if err := hooks.Verify(secret, r.Header.Get(hooks.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			t.Errorf("delivery %d: %v", len(keys)+1, err)
		}
		keys = append(keys, r.Header.Get(hooks.IDHeader))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			close(held)
			<-r.Context().Done() // held until the leader dies
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	created, err := f.client(0).AddHook(ctx, client.HookRequest{URL: srv.URL, Events: []string{model.EventSiteCreated}})
	if err != nil {
		t.Fatal(err)
	}
	// A second hook follows the nodes.
	var nodeEvents []model.HookEvent
	nodes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e model.HookEvent
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("node event: %v", err)
		}
		mu.Lock()
		nodeEvents = append(nodeEvents, e)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer nodes.Close()
	if _, err := f.client(0).AddHook(ctx, client.HookRequest{URL: nodes.URL, Events: []string{model.EventNodeLeft, model.EventNodeJoined}}); err != nil {
		t.Fatal(err)
	}
	sawNode := func(typ, name string) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range nodeEvents {
				if e.Type == typ && e.Node == name {
					return nil
				}
			}
			return fmt.Errorf("no %s for %s in %+v", typ, name, nodeEvents)
		}
	}
	mu.Lock()
	secret = []byte(created.Secret)
	mu.Unlock()
	li, err := leaderIndex(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	other := (li + 1) % len(f.nodes)
	if _, err := f.client(other).PutSite(ctx, state.Site{Domain: "hooked.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader made no delivery within 30s")
	}
	f.kill(f.nodes[li], false)
	took := f.eventually("the next leader delivers the event again", time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(keys) < 2 {
			return fmt.Errorf("%d deliveries", len(keys))
		}
		if keys[1] != keys[0] || keys[0] == "" {
			return fmt.Errorf("idempotency keys %q", keys)
		}
		return nil
	})
	t.Logf("redelivered %s after the kill (lease TTL %s)", took.Round(time.Millisecond), leaseTTL)
	// The killed leader left the fleet, and joins again when it starts.
	dead := f.nodes[li]
	f.eventually("node.left for the killed leader", time.Minute, sawNode(model.EventNodeLeft, dead.name))
	f.startNode(dead)
	f.eventually("node.joined when it is back", time.Minute, sawNode(model.EventNodeJoined, dead.name))
	mu.Lock()
	key := keys[0]
	mu.Unlock()
	// The new leader records the delivery once the receiver answered.
	f.eventually("the delivery in the log", 30*time.Second, func() error {
		log, err := f.client(other).HookDeliveries(ctx, 0)
		if err != nil {
			return err
		}
		var mine []model.HookLogEntry
		for _, e := range log.Entries {
			if e.Hook == created.Hook.ID {
				mine = append(mine, e)
			}
		}
		if len(mine) != 1 || mine[0].Result != "delivered" || mine[0].Event != key {
			return fmt.Errorf("delivery log %+v: want the one delivery the new leader made", mine)
		}
		return nil
	})
}
