package cluster_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/testutil"
)

func bundle(t testing.TB, version string) []byte {
	return testutil.TarGz(t, map[string]string{"index.html": "<p>bundle " + version + "</p>\n"})
}

// servesBody checks that the node answers host with body.
func (n *node) servesBody(host, body string) error {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.http+"/", nil)
	if err != nil {
		return err
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != body {
		return fmt.Errorf("%s answers %d %q", n.name, resp.StatusCode, b)
	}
	return nil
}

// TestUploadSurvivesTheReceivingNode uploads to node1 while node3 is down;
// the upload answers once node2 holds the bundle too; node1 dies at once
// (SIGKILL, with its nginx); node2 serves the deployment; node3 starts and
// fetches the bundle from node2, the only live holder.
func TestUploadSurvivesTheReceivingNode(t *testing.T) {
	f := newFleet(t)
	n1, n2, n3 := f.nodes[0], f.nodes[1], f.nodes[2]
	n3.p.stop(syscall.SIGTERM, 20*time.Second)
	f.eventually("two live nodes", 20*time.Second, func() error {
		cs, err := f.client(0).Cluster(context.Background())
		if err != nil {
			return err
		}
		live := 0
		for _, n := range cs.Nodes {
			if n.Live {
				live++
			}
		}
		if live != 2 {
			return fmt.Errorf("%d live", live)
		}
		return nil
	})
	ctx := context.Background()
	addSite(t, f.client(0), "survive.test")
	archive := bundle(t, "v1")
	sum := sha256.Sum256(archive)
	res, err := f.client(0).UploadBundle(ctx, "web", "v1", bytes.NewReader(archive), hex.EncodeToString(sum[:]), "")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.Holders)
	if strings.Join(res.Holders, ",") != "node1,node2" {
		t.Fatalf("upload answered with holders %v, want node1 and node2", res.Holders)
	}
	f.kill(n1, true)

	if _, err := f.client(1).Deploy(ctx, "survive.test", "web", "v1", 0, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("node2 serves the bundle", 20*time.Second, func() error { return n2.servesBody("survive.test", "<p>bundle v1</p>\n") })
	f.startNode(n3)
	f.eventually("node3 fetched it from node2", 30*time.Second, func() error { return n3.servesBody("survive.test", "<p>bundle v1</p>\n") })
	site, err := f.client(2).GetSite(ctx, "survive.test")
	if err != nil || site.Deployment == nil || site.Deployment.SHA256 != res.Bundle.SHA256 {
		t.Fatalf("site = %+v, %v", site, err)
	}
}
