package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api"
	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

const token = "test-token"

// fixedStatus is a StatusSource that reports one ready node.
type fixedStatus struct{}

func (fixedStatus) NodeStatus() client.NodeStatus { return client.NodeStatus{Node: "n1", Ready: true} }
func (fixedStatus) Preview(context.Context) (client.Preview, error) {
	return client.Preview{}, nil
}
func (fixedStatus) Cluster(context.Context) (client.ClusterStatus, error) {
	return client.ClusterStatus{}, nil
}

// newAPI serves the API over a state store on a real embedded etcd, with
// neither nginx nor a node behind it.
func newAPI(t *testing.T) (*httptest.Server, *state.Store) {
	t.Helper()
	e := etcdtest.New(t)
	store, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: "/api-test", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := api.NewHandler(api.Options{NodeName: "n1", Store: store, Status: fixedStatus{}, Auth: api.NewAuth([]string{token}, nil, log),
		MaxBodyBytes: 4096, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, store
}

type answer struct {
	code    int
	ctype   string
	etag    string
	problem struct {
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	body string
}

func call(t *testing.T, srv *httptest.Server, method, path, tok, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), etag: resp.Header.Get("ETag"), body: string(b)}
	if strings.HasPrefix(a.ctype, "application/problem+json") {
		if err := json.Unmarshal(b, &a.problem); err != nil {
			t.Fatalf("%s %s: problem body %q: %v", method, path, b, err)
		}
	}
	return a
}

// wantProblem checks an error answer: the status, a problem+json body
// that repeats it, and a detail that says what is wrong.
func wantProblem(t *testing.T, what string, a answer, code int, detail string) {
	t.Helper()
	if a.code != code || !strings.HasPrefix(a.ctype, "application/problem+json") || a.problem.Status != code ||
		!strings.Contains(a.problem.Detail, detail) {
		t.Errorf("%s: got %d %s %q, want %d problem+json naming %q", what, a.code, a.ctype, a.body, code, detail)
	}
}

func TestAuth(t *testing.T) {
	srv, _ := newAPI(t)
	if a := call(t, srv, "GET", "/healthz", "", ""); a.code != 200 {
		t.Errorf("/healthz without a token: %d", a.code)
	}
	for _, tok := range []string{"", "wrong", token + "x", strings.Repeat("a", 10000)} {
		a := call(t, srv, "GET", "/v1/sites", tok, "")
		wantProblem(t, "token "+tok[:min(len(tok), 12)], a, 401, "token")
	}
	if a := call(t, srv, "GET", "/v1/sites", token, ""); a.code != 200 {
		t.Errorf("with the token: %d %s", a.code, a.body)
	}
}

// Every bad write gets a 4xx that says what is wrong, and changes nothing.
func TestBadWritesChangeNothing(t *testing.T) {
	srv, store := newAPI(t)
	ctx := context.Background()
	ok := call(t, srv, "PUT", "/v1/sites/a.test", token, `{"domain":"a.test","aliases":["www.a.test"]}`)
	if ok.code != 200 || ok.etag == "" {
		t.Fatalf("PUT a.test: %d %s (ETag %q)", ok.code, ok.body, ok.etag)
	}
	before, err := store.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what, method, path, body string
		header                   []string
		code                     int
		detail                   string
	}{
		{"a domain that is not a host name", "PUT", "/v1/sites/a_b..test", `{"domain":"a_b..test"}`, nil, 422, "a_b..test"},
		{"a reserved name", "PUT", "/v1/sites/default", `{"domain":"default"}`, nil, 422, "default"},
		{"body and path disagree", "PUT", "/v1/sites/b.test", `{"domain":"c.test"}`, nil, 0, "c.test"},
		{"an alias another site holds", "PUT", "/v1/sites/b.test", `{"domain":"b.test","aliases":["www.a.test"]}`, nil, 409, "www.a.test"},
		{"not JSON", "PUT", "/v1/sites/b.test", `{"domain":`, nil, 400, ""},
		{"an unknown field", "PUT", "/v1/sites/b.test", `{"domain":"b.test","alias":["x.test"]}`, nil, 400, "alias"},
		{"a body over the limit", "PUT", "/v1/sites/b.test", `{"domain":"b.test","aliases":["` + strings.Repeat("x", 5000) + `"]}`, nil, 413, ""},
		{"a stale revision", "PUT", "/v1/sites/a.test", `{"domain":"a.test"}`, []string{"If-Match", `"1"`}, 412, ""},
		{"a malformed If-Match", "PUT", "/v1/sites/a.test", `{"domain":"a.test"}`, []string{"If-Match", "yesterday"}, 400, "If-Match"},
		{"create over an existing site", "PUT", "/v1/sites/a.test", `{"domain":"a.test"}`, []string{"If-None-Match", "*"}, 409, "already exists"},
		{"a deploy of a bundle that does not exist", "PUT", "/v1/sites/a.test/deployment", `{"app":"web","version":"9"}`, nil, 0, "web"},
		{"a rollback with no history", "POST", "/v1/sites/a.test/rollback", ``, nil, 0, ""},
		{"a delete of an unknown site", "DELETE", "/v1/sites/nope.test", ``, nil, 404, "nope.test"},
	} {
		a := call(t, srv, c.method, c.path, token, c.body, c.header...)
		if c.code == 0 {
			if a.code < 400 || a.code > 499 || !strings.HasPrefix(a.ctype, "application/problem+json") || !strings.Contains(a.problem.Detail+a.problem.Title, c.detail) {
				t.Errorf("%s: got %d %s %q, want a 4xx problem naming %q", c.what, a.code, a.ctype, a.body, c.detail)
			}
		} else {
			wantProblem(t, c.what, a, c.code, c.detail)
		}
		after, err := store.Export(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.Revision != before.Revision {
			t.Errorf("%s: the state changed (revision %d -> %d)", c.what, before.Revision, after.Revision)
		}
	}
	if a := call(t, srv, "GET", "/v1/sites/nope.test", token, ""); a.code != 404 {
		t.Errorf("GET an unknown site: %d", a.code)
	}
	// The ETag of a write is the precondition of the next.
	if a := call(t, srv, "PUT", "/v1/sites/a.test", token, `{"domain":"a.test"}`, "If-Match", ok.etag); a.code != 200 {
		t.Errorf("PUT with the ETag of the last write: %d %s", a.code, a.body)
	}
}
