package webserver

import (
	"context"
	"errors"
	"mime"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// twoSites is the plan of the end-to-end tests: a.test with content "A"
// (alias www.a.test serving it, alias old.a.test redirecting) and p.test
// served from the placeholder.
// withOperatorFile returns a server whose config includes an operator's
// extra file (extra.conf, valid for now), with twoSites applied.
func (f *fixture) withOperatorFile(t *testing.T) (*Server, Plan) {
	t.Helper()
	extra := filepath.Join(f.dir, "extra.conf")
	writeFiles(t, f.dir, map[string]string{"extra.conf": "gzip on;\n"})
	opts := f.options()
	opts.ExtraHTTPConfigFiles = []string{extra}
	s := f.newServer(t, opts)
	plan := f.twoSites(t)
	mustApply(t, s, plan, true)
	return s, plan
}

func (f *fixture) twoSites(t *testing.T) Plan {
	t.Helper()
	root := f.site(t, "a", map[string]string{"index.html": "A", "style.css": "body{}", "page.html": "<p>page</p>"})
	return Plan{
		HTTPListen:      f.listen,
		PlaceholderRoot: f.placeholder,
		Sites: []Site{
			{Domain: "a.test", Aliases: []string{"www.a.test"}, Root: root},
			{Domain: "a.test.redirect", Aliases: []string{"old.a.test"}, RedirectAliases: true, Root: root},
			{Domain: "p.test"},
		},
	}
}

func mustApply(t testing.TB, s *Server, plan Plan, wantChanged bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Apply(ctx, plan)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Changed != wantChanged {
		t.Fatalf("Apply: got changed=%v, want %v", res.Changed, wantChanged)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("Apply: rejected %v", res.Rejected)
	}
}

func TestManagedServesSites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	plan := f.twoSites(t)
	mustApply(t, s, plan, true) // before Run: Run waits for it
	run(t, s)
	testutil.WaitFor(t, "nginx to run", 10*time.Second, func() bool { return s.Status().Running })
	if err := s.Run(context.Background()); !errors.Is(err, ErrRunActive) {
		t.Errorf("second concurrent Run: got %v, want ErrRunActive", err)
	}

	_, port, _ := strings.Cut(f.listen, ":")
	tests := []struct {
		name, host, path string
		status           int
		body             string // "" means do not check
		contentType      string // media type without parameters; "" means do not check
		location         string
	}{
		{"site", "a.test", "/", 200, "A", "text/html", ""},
		{"site with port in host", "a.test:" + port, "/", 200, "A", "text/html", ""},
		{"upper case host", "A.TEST", "/", 200, "A", "", ""},
		{"alias", "www.a.test", "/", 200, "A", "text/html", ""},
		{"css", "a.test", "/style.css", 200, "body{}", "text/css", ""},
		{"html", "a.test", "/page.html", 200, "<p>page</p>", "text/html", ""},
		{"missing file", "a.test", "/nope.txt", 404, "", "", ""},
		{"placeholder", "p.test", "/", 200, "placeholder\n", "text/html", ""},
		{"redirect alias", "old.a.test", "/x/y?q=1", 301, "", "", "http://a.test.redirect/x/y?q=1"},
		{"redirect alias keeps port", "old.a.test:" + port, "/x?q", 301, "", "", "http://a.test.redirect:" + port + "/x?q"},
		{"unknown host", "unknown.test", "/", 404, UnknownHostBody, "text/plain", ""},
		{"unknown host css path", "unknown.test:" + port, "/style.css", 404, UnknownHostBody, "text/plain", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustGet(t, f.listen, tt.host, tt.path)
			if r.status != tt.status {
				t.Errorf("status: got %d, want %d (body %q)", r.status, tt.status, r.body)
			}
			if tt.body != "" && r.body != tt.body {
				t.Errorf("body: got %q, want %q", r.body, tt.body)
			}
			if tt.contentType != "" {
				if got, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); got != tt.contentType {
					t.Errorf("Content-Type: got %q, want %q", r.header.Get("Content-Type"), tt.contentType)
				}
			}
			if got := r.header.Get("Location"); got != tt.location {
				t.Errorf("Location: got %q, want %q", got, tt.location)
			}
		})
	}
}

func TestManagedApplyIdenticalAndChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	plan := f.twoSites(t)
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	runningMaster(t, s)
	st := s.Status()
	workers := childPIDs(st.PID)
	slices.Sort(workers)
	if len(workers) == 0 {
		t.Fatalf("no nginx workers found under master %d", st.PID)
	}

	// Identical plan: nothing is touched, so nginx keeps its workers.
	link, _ := os.Readlink(filepath.Join(f.prefix, "conf"))
	mustApply(t, s, plan, false)
	after := childPIDs(st.PID)
	slices.Sort(after)
	if !slices.Equal(after, workers) {
		t.Errorf("workers after identical apply: got %v, want unchanged %v (nginx was reloaded)", after, workers)
	}
	if got, _ := os.Readlink(filepath.Join(f.prefix, "conf")); got != link {
		t.Errorf("conf link after identical apply: got %q, want %q", got, link)
	}
	if got := s.Status().Generation; got != st.Generation {
		t.Errorf("generation after identical apply: got %s, want %s", got, st.Generation)
	}

	// A site whose options nginx must know added: served as soon as
	// Apply returns, by new workers.
	added := plan
	added.Sites = append(slices.Clone(plan.Sites), Site{Domain: "b.test", Root: f.site(t, "b", map[string]string{"index.html": "B"}), RedirectHTML: true})
	mustApply(t, s, added, true)
	for i := range 20 { // fresh connections, spread over the workers
		if r := mustGet(t, f.listen, "b.test", "/"); r.status != 200 || r.body != "B" {
			t.Fatalf("request %d to added site: got %d %q, want 200 \"B\"", i, r.status, r.body)
		}
	}
	if got := childPIDs(st.PID); slices.Equal(got, workers) {
		t.Errorf("workers after changed apply: got %v, want new ones", got)
	}
	if got := s.Status(); got.Generation == st.Generation || got.PID != st.PID {
		t.Errorf("status after change: got generation %s pid %d, want a new generation and pid %d", got.Generation, got.PID, st.PID)
	}

	// Site removed: unknown right after Apply returns.
	mustApply(t, s, plan, true)
	for i := range 20 {
		if r := mustGet(t, f.listen, "b.test", "/"); r.status != 404 || r.body != UnknownHostBody {
			t.Fatalf("request %d to removed site: got %d %q, want 404 %q", i, r.status, r.body, UnknownHostBody)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(f.prefix, "generations"))
	if len(entries) != 2 {
		t.Errorf("generations kept: got %d, want 2 (live and previous)", len(entries))
	}
}

func TestManagedRejectedConfigKeepsServing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s, plan := f.withOperatorFile(t)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	link, _ := os.Readlink(filepath.Join(f.prefix, "conf"))
	gen := s.Status().Generation

	writeFiles(t, f.dir, map[string]string{"extra.conf": "garbage here;\n"})
	res, err := s.Apply(context.Background(), plan)
	var testErr *TestError
	if !errors.As(err, &testErr) {
		t.Fatalf("Apply with broken extra config: got changed=%v err %v, want a *TestError", res.Changed, err)
	}
	if !strings.Contains(testErr.Output, `unknown directive "garbage"`) {
		t.Errorf("TestError output: got %q, want nginx's unknown directive message", testErr.Output)
	}
	if got, _ := os.Readlink(filepath.Join(f.prefix, "conf")); got != link {
		t.Errorf("conf link after rejected apply: got %q, want unchanged %q", got, link)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.prefix, "generations")); len(entries) != 1 {
		t.Errorf("generations after rejected apply: got %d dirs, want 1 (the failed one removed)", len(entries))
	}
	if st := s.Status(); st.Generation != gen || st.LastError == "" {
		t.Errorf("status after rejected apply: got generation %s, last error %q; want %s and an error", st.Generation, st.LastError, gen)
	}
	if r := mustGet(t, f.listen, "a.test", "/"); r.status != 200 || r.body != "A" {
		t.Errorf("after rejected apply: got %d %q, want 200 \"A\"", r.status, r.body)
	}

	writeFiles(t, f.dir, map[string]string{"extra.conf": "gzip off;\n"})
	mustApply(t, s, plan, true)
	if st := s.Status(); st.Generation == gen || st.LastError != "" {
		t.Errorf("status after fixed apply: got generation %s, last error %q; want a new one and none", st.Generation, st.LastError)
	}
	waitServing(t, f.listen, "a.test", "/", 200, "A")
}

func TestManagedRestartsKilledNginx(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	mustApply(t, s, f.twoSites(t), true)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	old := runningMaster(t, s)

	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("kill nginx master: %v", err)
	}
	testutil.WaitFor(t, "a restarted nginx", 15*time.Second, func() bool {
		st := s.Status()
		return st.Running && st.PID != old && st.Restarts == 1
	})
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	if st := s.Status(); st.LastError != "" {
		t.Errorf("status after restart: got last error %q, want none", st.LastError)
	}
}

func TestManagedStopsOnCancel(t *testing.T) {
	f := newFixture(t) // not parallel: counts goroutines
	before := goroutines()
	s := f.newServer(t, f.options())
	mustApply(t, s, f.twoSites(t), true)
	stop := run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	master := runningMaster(t, s)
	workers := childPIDs(master)

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("graceful stop took %s, want well under StopTimeout", took)
	}
	for _, pid := range append(workers, master) {
		if processAlive(pid) {
			t.Errorf("nginx process %d still alive after Run returned", pid)
		}
	}
	if !portFree(f.listen) {
		t.Errorf("port %s still in use after Run returned", f.listen)
	}
	if st := s.Status(); st.Running || st.PID != 0 {
		t.Errorf("status after stop: got running=%v pid=%d, want stopped", st.Running, st.PID)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `msg="nginx stopped" pid=`+strconv.Itoa(master)+` status="exit status 0"`) {
		t.Errorf("nginx did not exit cleanly after SIGQUIT; logs:\n%s", logs)
	}
	testutil.WaitFor(t, "goroutines to end", 5*time.Second, func() bool { return goroutines() <= before })

	// A new Server on the same prefix recognises the live generation.
	s2 := f.newServer(t, f.options())
	if got, want := s2.Status().Generation, s.Status().Generation; got != want {
		t.Errorf("recovered generation: got %q, want %q", got, want)
	}
	mustApply(t, s2, f.twoSites(t), false)
	run(t, s2)
	waitServing(t, f.listen, "a.test", "/", 200, "A")
}

// runningMaster waits until s reports a running nginx and returns its pid.
// (nginx may answer requests a moment before Run has read its pid file.)
func runningMaster(t *testing.T, s *Server) int {
	t.Helper()
	testutil.WaitFor(t, "nginx to be running", 10*time.Second, func() bool { return s.Status().Running })
	pid := s.Status().PID
	if pid <= 1 {
		t.Fatalf("running nginx has pid %d", pid)
	}
	return pid
}

func goroutines() int { return runtime.NumGoroutine() }

func TestManagedStartFailureIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	blocker, err := net.Listen("tcp", f.listen)
	if err != nil {
		t.Fatalf("occupy %s: %v", f.listen, err)
	}
	defer blocker.Close()
	s := f.newServer(t, f.options())
	mustApply(t, s, f.twoSites(t), true) // nginx -t does not bind
	run(t, s)
	testutil.WaitFor(t, "a start error in the status", 20*time.Second, func() bool {
		return strings.Contains(s.Status().LastError, "Address already in use")
	})
	blocker.Close()
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	testutil.WaitFor(t, "the start error to clear", 5*time.Second, func() bool { return s.Status().LastError == "" })
	if st := s.Status(); st.Restarts != 0 {
		t.Errorf("restarts after start failures: got %d, want 0 (nginx never ran)", st.Restarts)
	}
}
