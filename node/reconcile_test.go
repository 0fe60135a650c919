package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
	"github.com/sitefleet/sitefleet/webserver"
)

// recordingWeb is a web server that records the plans it is given and
// refuses what the test says: a site (named in Rejected, as nginx's
// refusal would be) or the whole plan.
type recordingWeb struct {
	mu     sync.Mutex
	plans  []webserver.Plan
	refuse map[string]string // domain -> reason
	fail   error             // the whole Apply fails
}

func (w *recordingWeb) Apply(_ context.Context, plan webserver.Plan) (webserver.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return webserver.Result{}, w.fail
	}
	w.plans = append(w.plans, plan)
	res := webserver.Result{Switched: 1}
	for _, s := range plan.Sites {
		if reason, ok := w.refuse[s.Domain]; ok {
			if res.Rejected == nil {
				res.Rejected = map[string]string{}
			}
			res.Rejected[s.Domain] = reason
		}
	}
	return res, nil
}

func (w *recordingWeb) set(refuse map[string]string, fail error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refuse, w.fail = refuse, fail
}

func (w *recordingWeb) last() webserver.Plan {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.plans[len(w.plans)-1]
}

func (w *recordingWeb) applies() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.plans)
}

// reconciler runs a node over a real embedded etcd (through a state
// mirror, as the daemon does) and a recording web server.
func reconciler(t *testing.T) (*Node, *state.Store, *recordingWeb, *etcdtest.Server) {
	t.Helper()
	e := etcdtest.New(t)
	store, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: "/node-test", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mirror := state.NewMirror(store, log)
	web := &recordingWeb{}
	n, err := New(Options{Source: mirror, Web: web, Cache: state.Cache{Path: filepath.Join(t.TempDir(), "cache.json"), Prefix: "/node-test"},
		HTTPListen: "127.0.0.1:1", PlaceholderRoot: "/srv/placeholder", Quiescence: 5 * time.Millisecond,
		ProbeInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = mirror.Run(ctx) })
	wg.Go(func() { _ = n.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return n, store, web, e
}

// put writes a site through the store, as the API would.
func put(t *testing.T, store *state.Store, site state.Site) state.Site {
	t.Helper()
	got, err := store.PutSite(context.Background(), site, state.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// appliedAt waits until the node has applied the state revision rev.
func appliedAt(t *testing.T, n *Node, rev int64) Status {
	t.Helper()
	var st Status
	testutil.WaitFor(t, "the node applies the state", 5*time.Second, func() bool {
		st = n.Status()
		return st.AppliedRevision >= rev
	})
	return st
}

func TestReconcileFollowsTheStore(t *testing.T) {
	n, store, web, _ := reconciler(t)
	ctx := context.Background()
	a := put(t, store, state.Site{Domain: "a.test", Aliases: []string{"www.a.test"}})
	st := appliedAt(t, n, a.Revision)
	if st.Sites != 1 || len(st.SiteErrors) != 0 || !st.Applied {
		t.Fatalf("after a.test: %+v", st)
	}
	plan := web.last()
	if len(plan.Sites) != 1 || plan.Sites[0].Domain != "a.test" || plan.Sites[0].Root != "" || plan.PlaceholderRoot != "/srv/placeholder" {
		t.Fatalf("plan: %+v", plan)
	}
	// Nothing changes: no pass applies anything more.
	before := web.applies()
	time.Sleep(200 * time.Millisecond) // a few probe intervals
	if got := web.applies(); got != before {
		t.Errorf("an unchanged state was applied again (%d -> %d applies)", before, got)
	}
	rev, err := store.DeleteSite(ctx, "a.test", state.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if st := appliedAt(t, n, rev); st.Sites != 0 {
		t.Errorf("after the delete: %d sites", st.Sites)
	}
}

// A site the web server refuses keeps its last served form, is named
// with the reason, and never holds back the other sites; once it changes
// to a form that is served, its error goes.
func TestReconcileIsolatesARefusedSite(t *testing.T) {
	n, store, web, _ := reconciler(t)
	served := put(t, store, state.Site{Domain: "bad.test"})
	appliedAt(t, n, served.Revision)
	web.set(map[string]string{"bad.test": "nginx refused this site's configuration: boom"}, nil)
	bad := put(t, store, state.Site{Domain: "bad.test", Aliases: []string{"www.bad.test"}})
	good := put(t, store, state.Site{Domain: "good.test"})
	st := appliedAt(t, n, max(bad.Revision, good.Revision))
	if !strings.Contains(st.SiteErrors["bad.test"], "boom") || len(st.SiteErrors) != 1 || st.Sites != 2 {
		t.Fatalf("status: %+v", st)
	}
	if kept, ok := n.lastApplied("bad.test"); !ok || len(kept.Aliases) != 0 {
		t.Errorf("the refused site's applied form: %+v (want the one served before, without the alias)", kept)
	}
	web.set(nil, nil)
	fixed := put(t, store, state.Site{Domain: "bad.test"})
	if st := appliedAt(t, n, fixed.Revision); len(st.SiteErrors) != 0 {
		t.Errorf("after the fix: %v", st.SiteErrors)
	}
}

// A pass the web server fails as a whole is reported and retried; the
// state served stays the last applied one.
func TestReconcileRetriesAFailedPass(t *testing.T) {
	n, store, web, _ := reconciler(t)
	first := put(t, store, state.Site{Domain: "a.test"})
	appliedAt(t, n, first.Revision)
	web.set(nil, errors.New("disk full"))
	second := put(t, store, state.Site{Domain: "b.test"})
	testutil.WaitFor(t, "the failure in the status", 5*time.Second, func() bool {
		return strings.Contains(n.Status().LastError, "disk full")
	})
	if st := n.Status(); st.AppliedRevision != first.Revision || st.DesiredRevision < second.Revision {
		t.Errorf("while failing: applied %d (want %d), desired %d", st.AppliedRevision, first.Revision, st.DesiredRevision)
	}
	web.set(nil, nil)
	if st := appliedAt(t, n, second.Revision); st.LastError != "" || st.Sites != 2 {
		t.Errorf("after the retry: %+v", st)
	}
}

// A record written behind the API's back that does not validate keeps
// its last applied form and its error; the other sites go on.
func TestReconcileKeepsAnInvalidRecordOut(t *testing.T) {
	n, store, web, e := reconciler(t)
	ctx := context.Background()
	if _, err := e.Client(t).Put(ctx, store.Keys().Site("x.test"), `{"domain":"x.test","aliases":["-bad-.test"]}`); err != nil {
		t.Fatal(err)
	}
	ok := put(t, store, state.Site{Domain: "ok.test"})
	st := appliedAt(t, n, ok.Revision)
	if !strings.Contains(st.SiteErrors["x.test"], "invalid site in the store") || st.Sites != 1 {
		t.Fatalf("status: %+v", st)
	}
	plan := web.last()
	if len(plan.Sites) != 1 || plan.Sites[0].Domain != "ok.test" {
		t.Errorf("plan: %+v", plan.Sites)
	}
}
