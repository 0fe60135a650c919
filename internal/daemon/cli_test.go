package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/cli"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// cli runs the sitefleet command with args against node n and returns its
// output and error.
func (n *testNode) cli(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := cli.NewRoot(&out, &errOut)
	cmd.SetArgs(append([]string{"--server", "http://" + n.cfg.API.Listen, "--token", n.waitToken()}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func TestCLI(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	n.waitLeaderSettled(e) // its writes would make the exported state stale

	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := n.cli(args...)
		if err != nil {
			t.Fatalf("sitefleet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := mustCLI("site", "add", "cli.test", "--alias", "www.cli.test,alt.cli.test", "--redirect-aliases"); !strings.Contains(out, "added site cli.test") {
		t.Fatalf("site add: %q", out)
	}
	n.waitServed("cli.test")
	if out := mustCLI("site", "list"); !strings.Contains(out, "cli.test") || !strings.Contains(out, "alt.cli.test,www.cli.test") {
		t.Fatalf("site list: %q", out)
	}
	var list client.SitesList
	if err := json.Unmarshal([]byte(mustCLI("site", "list", "-o", "json")), &list); err != nil || len(list.Sites) != 1 || !list.Sites[0].Options.RedirectAliases {
		t.Fatalf("site list -o json: %+v %v", list, err)
	}
	if out := mustCLI("site", "get", "cli.test"); !strings.Contains(out, "redirect aliases:  true") {
		t.Fatalf("site get: %q", out)
	}
	mustCLI("site", "set", "cli.test", "--redirect-aliases=false", "--alias", "www.cli.test")
	if got, _ := n.api.GetSite(context.Background(), "cli.test"); got.Options.RedirectAliases || strings.Join(got.Aliases, ",") != "www.cli.test" {
		t.Fatalf("after site set: %+v", got)
	}
	mustCLI("site", "set", "cli.test", "--redirect-aliases", "--alias", "alt.cli.test,www.cli.test")

	// Failures exit non-zero with the API's message.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "add", "cli.test"}, "already exists"},
		{[]string{"site", "add", "bad;name.test"}, "not allowed"},
		{[]string{"site", "add", "other.test", "--alias", "www.cli.test"}, "already used by site"},
		{[]string{"site", "get", "missing.test"}, "does not exist"},
		{[]string{"site", "rm", "cli.test", "--if-revision", "1"}, "changed since revision 1"},
		{[]string{"site", "list", "-o", "yaml"}, "--output"},
	} {
		out, err := n.cli(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sitefleet %s: err %v (output %q), want one containing %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}

	// state get / set round trip, with a dry run first.
	file := filepath.Join(t.TempDir(), "state.json")
	mustCLI("state", "get", "-o", file)
	var doc state.Document
	b, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(b, &doc) != nil || len(doc.Sites) != 1 {
		t.Fatalf("state file: %s %v", b, err)
	}
	doc.Sites = append(doc.Sites, state.Site{Domain: "second.test"})
	b, _ = json.Marshal(doc)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI("state", "set", "-f", file, "--dry-run"); !strings.Contains(out, "add     site second.test") || !strings.Contains(out, "dry run") {
		t.Fatalf("state set --dry-run: %q", out)
	}
	if list, _ := n.api.ListSites(context.Background()); len(list.Sites) != 1 {
		t.Fatalf("dry run wrote: %+v", list.Sites)
	}
	mustCLI("state", "set", "-f", file)
	n.waitServed("second.test")
	if out, err := n.cli("state", "set", "-f", file); err == nil || !strings.Contains(err.Error(), "HTTP 412") {
		t.Fatalf("stale state set: %v %q, want a 412", err, out)
	}

	// nginx may serve the new config a moment before the node records
	// the pass as applied, so the status is checked until it catches up.
	n.eventually("status shows two sites", 5*time.Second, func() error {
		if out := mustCLI("status"); !strings.Contains(out, "ready:             true") || !strings.Contains(out, "sites:             2") {
			return fmt.Errorf("status: %q", out)
		}
		return nil
	})
	if out := mustCLI("site", "rm", "cli.test"); !strings.Contains(out, "removed site cli.test") {
		t.Fatalf("site rm: %q", out)
	}
	n.waitUnknown("cli.test")
}

func TestCLIFindsTheLocalNode(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	n.waitToken()
	path := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "dataDir: " + cfg.DataDir + "\napi:\n  listen: " + cfg.API.Listen + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := cli.NewRoot(&out, &out)
	cmd.SetArgs([]string{"--config", path, "site", "add", "local.test"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("site add through the local config: %v\n%s", err, out.String())
	}
	n.waitServed("local.test")
}

// state set refuses a document with data after it, from a file or stdin,
// and a file larger than the stdin cap, before sending anything.
func TestCLIStateSetRefusesBadDocuments(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		http.Error(w, "unexpected request", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	run := func(stdin string, args ...string) error {
		var out bytes.Buffer
		cmd := cli.NewRoot(&out, &out)
		cmd.SetIn(strings.NewReader(stdin))
		cmd.SetArgs(append([]string{"--server", srv.URL, "--token", "t", "state", "set"}, args...))
		return cmd.ExecuteContext(context.Background())
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, doc := range []string{`{"sites":[]} garbage`, `{"sites":[]}{"sites":[]}`, "{\"sites\":[]}\n]"} {
		if err := run("", "-f", write("trailing.json", doc)); err == nil || !strings.Contains(err.Error(), "after the JSON document") {
			t.Errorf("state set -f with %q: err %v, want one about data after the document", doc, err)
		}
		if err := run(doc, "-f", "-"); err == nil || !strings.Contains(err.Error(), "after the JSON document") {
			t.Errorf("state set -f - with %q: err %v, want one about data after the document", doc, err)
		}
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 64<<20+1); err != nil {
		t.Fatal(err)
	}
	if err := run("", "-f", big); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Errorf("state set -f with a 64 MiB + 1 file: err %v, want one about its size", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d request(s) sent for refused documents", n)
	}
	// A document followed only by white space is read and sent.
	if err := run("", "-f", write("ok.json", "{\"sites\":[]}\n\n")); err == nil || !strings.Contains(err.Error(), "418") || requests.Load() != 1 {
		t.Errorf("state set -f with a trailing newline: err %v after %d request(s), want the test server's 418 after one", err, requests.Load())
	}
}

// sitefleet ready exits 0 with the revision on a ready node, and asks no
// token; on a node that stopped it fails.
func TestReadyCommand(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	run := func() (string, error) {
		var out, errOut bytes.Buffer
		cmd := cli.NewRoot(&out, &errOut)
		cmd.SetArgs([]string{"--server", "http://" + n.cfg.API.Listen, "ready"})
		err := cmd.ExecuteContext(context.Background())
		return out.String() + errOut.String(), err
	}
	n.eventually("the node is ready", 10*time.Second, func() error {
		out, err := run()
		if err == nil && !strings.HasPrefix(out, "ready (revision ") {
			err = fmt.Errorf("%q", out)
		}
		return err
	})
	n.stop()
	if out, err := run(); err == nil {
		t.Fatalf("ready after the node stopped: %q", out)
	}
}
