package webserver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// startNginx starts nginx on the prefix like a previous sitefleet process
// (or an operator) would have, and returns its command (the test is its
// parent, and nginx gets SIGTERM if the test binary dies).
func startNginx(t *testing.T, s *Server, extraArgs ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(s.opts.Binary, append(s.startArgs(), extraArgs...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

func TestManagedAdoptsRunningMaster(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.newServer(t, f.options())
	plan := f.twoSites(t)
	mustApply(t, first, plan, true) // no Run: only writes the config
	cmd := startNginx(t, first)
	waitServing(t, f.listen, "a.test", "/", 200, "A")

	// A new Server (as after a sitefleet restart) sees the same generation...
	s := f.newServer(t, f.options())
	mustApply(t, s, plan, false)
	// ...and applies a change while nginx is not yet known to it.
	changed := plan
	changed.Sites = append(changed.Sites[:len(changed.Sites):len(changed.Sites)],
		Site{Domain: "b.test", Root: f.site(t, "b", map[string]string{"index.html": "B"}), RedirectHTML: true})
	mustApply(t, s, changed, true)

	stop := run(t, s)
	testutil.WaitFor(t, "adoption", 10*time.Second, func() bool { return s.Status().PID == cmd.Process.Pid })
	// The adopted master was reloaded to the live generation.
	waitServing(t, f.listen, "b.test", "/", 200, "B")
	if st := s.Status(); !st.Running || st.Restarts != 0 {
		t.Errorf("status after adoption: got running=%v restarts=%d, want true 0", st.Running, st.Restarts)
	}
	if strings.Contains(f.logs.String(), "started nginx") {
		t.Errorf("Run started a second nginx instead of adopting")
	}

	// Apply reloads the adopted master too.
	mustApply(t, s, plan, true)
	if r := mustGet(t, f.listen, "b.test", "/"); r.status != 404 {
		t.Errorf("removed site on adopted nginx: got %d, want 404", r.status)
	}

	// Stopping Run stops the adopted master gracefully.
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("adopted nginx exit: got %v, want clean exit after SIGQUIT", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("adopted nginx still running after Run returned")
	}
	if !portFree(f.listen) {
		t.Errorf("port %s still in use", f.listen)
	}
}

func TestUnmanagedReloadCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	opts := f.options()
	opts.Manage = false
	s := f.newServer(t, opts)
	plan := f.twoSites(t)

	// Run is a no-op that waits for ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("unmanaged Run: got %v, want nil", err)
	}

	mustApply(t, s, plan, true) // nginx not running: config only
	conf, _ := os.ReadFile(filepath.Join(f.prefix, "conf", "nginx.conf"))
	if strings.Contains(string(conf), "daemon off") {
		t.Errorf("unmanaged nginx.conf has daemon off")
	}
	// The operator runs nginx (in the foreground, as systemd would); the pid
	// file tells Apply where it is.
	startNginx(t, s, "-g", "daemon off;")
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	if st := s.Status(); !st.Running || st.PID == 0 {
		t.Errorf("unmanaged status: got running=%v pid=%d, want the pid file's master", st.Running, st.PID)
	}

	changed := plan
	changed.Sites = append(changed.Sites[:len(changed.Sites):len(changed.Sites)],
		Site{Domain: "b.test", Root: f.site(t, "b", map[string]string{"index.html": "B"}), RedirectHTML: true})
	mustApply(t, s, changed, true) // runs `nginx -s reload` and waits for it
	if r := mustGet(t, f.listen, "b.test", "/"); r.status != 200 || r.body != "B" {
		t.Errorf("after unmanaged reload: got %d %q, want 200 \"B\"", r.status, r.body)
	}
}

func TestReloadFailureRollsBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	opts := f.options()
	opts.Manage = false
	opts.ReloadCommand = []string{"false"}
	s := f.newServer(t, opts)
	plan := f.twoSites(t)
	mustApply(t, s, plan, true)
	startNginx(t, s, "-g", "daemon off;")
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	link, _ := os.Readlink(filepath.Join(f.prefix, "conf"))
	gen := s.Status().Generation

	changed := plan
	changed.Sites = changed.Sites[:1]
	if res, err := s.Apply(context.Background(), changed); err == nil || res.Changed {
		t.Fatalf("Apply with failing reload command: got %v, %v; want an error", res, err)
	}
	if got, _ := os.Readlink(filepath.Join(f.prefix, "conf")); got != link {
		t.Errorf("conf link after failed reload: got %q, want rolled back to %q", got, link)
	}
	if got := s.Status().Generation; got != gen {
		t.Errorf("generation after failed reload: got %s, want %s", got, gen)
	}
}
