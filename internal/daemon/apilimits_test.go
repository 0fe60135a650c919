package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
)

// rawConn opens a TCP connection to the node's API and writes s on it.
func rawConn(t *testing.T, n *testNode, s string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.cfg.API.Listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin reads from c until the node closes it, failing the test
// if that takes longer than limit. It returns what was read.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(limit)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the node kept the connection open for %s (read %q)", limit, b)
	}
	return string(b)
}

// A keep-alive connection left idle is closed at api.idleTimeout, so idle
// clients cannot pin connections and goroutines without limit.
func TestIdleConnectionsAreClosed(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.API.IdleTimeout = time.Second
	n := startNode(t, cfg)

	c := rawConn(t, n, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("healthz: %d, close %v", resp.StatusCode, resp.Close)
	}
	closedWithin(t, c, 10*time.Second)
}

// A request whose body stalls is cut off at api.requestTimeout and
// changes nothing.
func TestStalledBodiesAreCutOff(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.API.RequestTimeout = time.Second
	cfg.API.IdleTimeout = time.Minute // not what closes the connection
	n := startNode(t, cfg)

	c := rawConn(t, n, fmt.Sprintf("PUT /v1/sites/stall.test HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"domain\":", n.waitToken()))
	got := closedWithin(t, c, 15*time.Second)
	if strings.HasPrefix(got, "HTTP/1.1 2") {
		t.Fatalf("a stalled body was accepted: %q", got)
	}
	var ce *client.Error
	if _, err := n.api.GetSite(context.Background(), "stall.test"); !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Fatalf("stalled write left a site behind: %v", err)
	}
}

// Uploads beyond api.maxConcurrentUploads wait for a slot, then get 503
// with Retry-After and a message naming the setting; once a slot frees,
// uploads are taken again.
func TestConcurrentUploadsAreBounded(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.API.MaxConcurrentUploads = 1
	n := startNode(t, cfg)
	token := n.waitToken()

	// One upload holds the only slot: its body never completes.
	hold := rawConn(t, n, fmt.Sprintf("PUT /v1/apps/hold/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\nContent-Length: 1000000\r\n\r\n\x1f\x8b", token))
	time.Sleep(200 * time.Millisecond) // let it take the slot

	put := func() (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPut, "http://"+cfg.API.Listen+"/v1/apps/next/1/tree", strings.NewReader("not a tree\n"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := put()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "api.maxConcurrentUploads") {
		t.Fatalf("upload beyond the bound: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	hold.Close()
	n.eventually("the slot is free again", 30*time.Second, func() error {
		if resp, body := put(); resp.StatusCode == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})
	if resp, body := put(); resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad tree once the slot is free: %d %s", resp.StatusCode, body)
	}
}
