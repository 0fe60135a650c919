package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/testutil"
)

// testNode is a whole node running in-process against a real etcd and a
// real nginx on loopback.
type testNode struct {
	t      testing.TB
	cfg    config.Config
	cancel context.CancelFunc
	done   chan error
	api    *client.Client
	// logs holds everything the node logged, debug level included.
	logs *testutil.LockedBuffer
}

// nodeConfig returns a configuration for a test node using etcd at endpoint.
func nodeConfig(t testing.TB, endpoint string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = testutil.WorldReadableTempDir(t)
	cfg.NodeName = "test"
	cfg.State.Store = cluster.StoreEtcd
	cfg.State.Etcd.Address = endpoint
	cfg.State.Etcd.KeyPrefix = "/" + strings.ReplaceAll(t.Name(), "/", "_")
	cfg.State.Etcd.Timeout = 1000
	cfg.API.Listen = etcdtest.FreeAddr(t)
	cfg.Web.HTTPListen = etcdtest.FreeAddr(t)
	cfg.Web.HTTPSListen = etcdtest.FreeAddr(t)
	cfg.Reconcile.Quiescence = 5
	cfg.Secrets.Key = testClusterKey
	cfg.Cluster.LeaseTTL = 2 * time.Second
	cfg.Cluster.PublishInterval = 100 * time.Millisecond
	cfg.TLS.DHParamBits = 256 // 2048-bit generation would take minutes under -race
	return cfg
}

// startNode runs a node with cfg until the test ends, and waits until its
// API answers.
func startNode(t testing.TB, cfg config.Config) *testNode {
	t.Helper()
	n := startNodeNoWait(t, cfg)
	n.api = client.New("http://"+cfg.API.Listen, n.waitToken())
	n.eventually("API answers", 30*time.Second, func() error {
		_, err := http.Get("http://" + cfg.API.Listen + "/healthz")
		return err
	})
	return n
}

// startNodeNoWait runs a node with cfg until the test ends.
func startNodeNoWait(t testing.TB, cfg config.Config) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{t: t, cfg: cfg, cancel: cancel, done: make(chan error, 1), logs: &testutil.LockedBuffer{}}
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: testLogLevel}),
		slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))
	go func() { n.done <- Run(ctx, cfg, log) }()
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) waitToken() string {
	var tok string
	n.eventually("admin token written", 30*time.Second, func() error {
		b, err := os.ReadFile(n.cfg.TokenPath())
		tok = strings.TrimSpace(string(b))
		if err == nil && tok == "" {
			err = fmt.Errorf("empty token file")
		}
		return err
	})
	return tok
}

// stop stops the node and waits until it has stopped nginx.
func (n *testNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			n.t.Errorf("node stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		n.t.Errorf("node did not stop within 30s")
	}
}

// eventually retries f until it succeeds or the timeout passes.
func (n *testNode) eventually(what string, timeout time.Duration, f func() error) {
	n.t.Helper()
	testutil.Eventually(n.t, what, timeout, f)
}

// get requests path from nginx with the given Host header.
func (n *testNode) get(host, path string) (int, string, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.cfg.Web.HTTPListen+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// waitAnswer waits until nginx answers host's path with the status and a
// body that matches.
func (n *testNode) waitAnswer(what, host, path string, timeout time.Duration, status int, matches func(body string) bool) {
	n.t.Helper()
	n.eventually(what, timeout, func() error {
		code, body, _, err := n.get(host, path)
		if err != nil {
			return err
		}
		if code != status || !matches(body) {
			return fmt.Errorf("got %d %q", code, body)
		}
		return nil
	})
}

// waitServed waits until host answers with the placeholder page (a
// configured site with nothing deployed).
func (n *testNode) waitServed(host string) {
	n.t.Helper()
	n.waitAnswer("nginx serves "+host, host, "/", 10*time.Second, 200, func(b string) bool { return strings.Contains(b, "served by sitefleet") })
}

// waitUnknown waits until host gets the unknown-host answer.
func (n *testNode) waitUnknown(host string) {
	n.t.Helper()
	n.waitAnswer("nginx no longer serves "+host, host, "/", 10*time.Second, 404, func(b string) bool { return strings.Contains(b, "no site is configured") })
}

// testLogWriter sends log lines to the test log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testLogLevel is the level of the test nodes' logs; SFTEST_LOG=debug
// shows more.
var testLogLevel = func() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("SFTEST_LOG"))); err != nil {
		return slog.LevelWarn
	}
	return l
}()

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testClusterKey is the cluster key of every test node, so that nodes of
// one test share a fleet.
const testClusterKey = "c2l0ZWZsZWV0LXRlc3QtY2x1c3Rlci1rZXktMzJieXQ="

// waitLeaderSettled waits until the leader's own first writes to the state
// (its DH parameters) are done, for tests that compare state revisions.
func (n *testNode) waitLeaderSettled(e *etcdtest.Server) {
	n.t.Helper()
	store := n.etcdStore(n.t.(*testing.T), e)
	n.eventually("the leader stores DH parameters", 60*time.Second, func() error {
		snap, err := store.Snapshot(context.Background())
		if err == nil && snap.DHParams == nil {
			err = fmt.Errorf("none yet")
		}
		return err
	})
}
