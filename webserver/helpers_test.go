package webserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// tempDir is t.TempDir made traversable by nginx workers, which run as
// "nobody" when the tests run as root (t.TempDir and its parent are 0700).
func tempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("chmod %s: %v", d, err)
		}
	}
	return dir
}

// freePort returns a free loopback port (see testutil.FreeAddr).
func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(testutil.FreeAddr(t))
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFiles creates dir with the given files (name -> contents), world-readable.
func writeFiles(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", dir, err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	return dir
}

// logSink collects log output for assertions and mirrors it to t.Log until
// the test's cleanups ran.
type logSink struct {
	mu     sync.Mutex
	t      testing.TB
	buf    bytes.Buffer
	closed bool
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.closed {
		l.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newLogger returns a logger writing to a logSink; registered first, its
// cleanup runs last.
func newLogger(t testing.TB) (*slog.Logger, *logSink) {
	sink := &logSink{t: t}
	t.Cleanup(func() {
		sink.mu.Lock()
		sink.closed = true
		sink.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})), sink
}

// fixture is a prefix, a listen address and site directories for one test.
type fixture struct {
	dir, prefix, listen, placeholder string
	log                              *slog.Logger
	logs                             *logSink
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	log, sink := newLogger(t)
	dir := tempDir(t)
	return &fixture{
		dir:         dir,
		prefix:      filepath.Join(dir, "nginx"),
		listen:      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		placeholder: writeFiles(t, filepath.Join(dir, "placeholder"), map[string]string{"index.html": "placeholder\n"}),
		log:         log,
		logs:        sink,
	}
}

// options are managed Options for the fixture with short timeouts.
func (f *fixture) options() Options {
	return Options{Prefix: f.prefix, Manage: true, Logger: f.log, StopTimeout: 5 * time.Second}
}

func (f *fixture) newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.pdeathsig = syscall.SIGTERM // a killed test binary must not leak nginx
	return s
}

// site creates a document root under the fixture.
func (f *fixture) site(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	return writeFiles(t, filepath.Join(f.dir, "sites", name), files)
}

// run starts s.Run in a goroutine and returns a function that cancels it and
// returns Run's result (also called at cleanup).
func run(t testing.TB, s *Server) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// response is what get saw.
type response struct {
	status int
	body   string
	header http.Header
}

// get sends GET http://addr<path> with the given Host on a fresh connection,
// without following redirects.
func get(addr, host, path string) (response, error) {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return response{}, err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(body), header: resp.Header}, err
}

// mustGet is get that fails the test on transport errors.
func mustGet(t testing.TB, addr, host, path string) response {
	t.Helper()
	r, err := get(addr, host, path)
	if err != nil {
		t.Fatalf("GET %s%s (Host %s): %v", addr, path, host, err)
	}
	return r
}

// waitServing waits until host answers path with status and body.
func waitServing(t testing.TB, addr, host, path string, status int, body string) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%s%s to answer %d %q", host, path, status, body), 10*time.Second, func() bool {
		r, err := get(addr, host, path)
		return err == nil && r.status == status && r.body == body
	})
}

// portFree reports whether addr can be bound.
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// bigPlan returns a plan of n sites named siteNNNNN.example.test, each with
// one alias (every third one redirecting); sites 0..longNames-1 get names of
// exactly 253 characters. All share root; variant changes one site's root
// so that plans with different variants render differently.
func bigPlan(listen, root, placeholder string, n, longNames, variant int) Plan {
	plan := Plan{HTTPListen: listen, PlaceholderRoot: placeholder, Sites: make([]Site, 0, n)}
	for i := range n {
		domain := fmt.Sprintf("site%05d.example.test", i)
		if i < longNames {
			domain = longName(i)
		}
		s := Site{Domain: domain, Aliases: []string{"www." + fmt.Sprintf("site%05d.example.test", i)}, Root: root, RedirectAliases: i%3 == 0}
		if i == 0 && variant%2 == 1 {
			s.Root = ""
		}
		plan.Sites = append(plan.Sites, s)
	}
	return plan
}

// longName is a distinct hostname of exactly 253 characters.
func longName(i int) string {
	label := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	name := fmt.Sprintf("n%05d", i) + label('a', 57) + "." + label('b', 63) + "." + label('c', 63) + "." + label('d', 61)
	if len(name) != 253 {
		panic(fmt.Sprintf("longName is %d long", len(name)))
	}
	return name
}
