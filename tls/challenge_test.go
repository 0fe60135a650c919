package tls

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/sitefleet/sitefleet/state"
)

// countingCache counts the reads that reach the state store.
type countingCache struct {
	autocert.Cache
	reads atomic.Int64
}

func (c *countingCache) Get(ctx context.Context, name string) ([]byte, error) {
	c.reads.Add(1)
	return c.Cache.Get(ctx, name)
}

// challengeFixture serves the challenge handler over a real etcd and a
// running state copy, with one ACME site (acme.test, alias
// www.acme.test), one plain site, and one challenge stored by the leader.
func challengeFixture(t *testing.T) (*challengeHandler, *countingCache) {
	t.Helper()
	svc, store, guard := newService(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, s := range []state.Site{
		{Domain: "acme.test", Aliases: []string{"www.acme.test"}, TLS: &state.SiteTLS{Mode: state.TLSACME}},
		{Domain: "plain.test"},
	} {
		if _, err := store.PutSite(ctx, s, state.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	leader := &stateCache{store: store, sealer: svc.Sealer, guard: &guard}
	if err := leader.Put(ctx, challengeToken+"+http-01", []byte(challengeToken+".keyauth")); err != nil {
		t.Fatal(err)
	}
	mirror := state.NewMirror(store, nil)
	go func() { _ = mirror.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := mirror.Snapshot(ctx)
		if err == nil && len(snap.Sites) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the state copy did not sync: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h := ChallengeHandler(store, svc.Sealer, mirror, slog.New(slog.NewTextHandler(io.Discard, nil))).(*challengeHandler)
	counted := &countingCache{Cache: h.cache}
	h.cache = counted
	return h, counted
}

const challengeToken = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"

func challenge(h http.Handler, method, host, path string) (int, string) {
	r := httptest.NewRequest(method, "http://"+host+path, nil)
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestChallengeAnswersKnownACMEHosts(t *testing.T) {
	h, _ := challengeFixture(t)
	for _, host := range []string{"acme.test", "www.acme.test", "ACME.test:80", "acme.test."} {
		if code, body := challenge(h, http.MethodGet, host, challengePrefix+challengeToken); code != 200 || body != challengeToken+".keyauth" {
			t.Errorf("%s: %d %q", host, code, body)
		}
	}
}

// Hostile and unknown requests are refused without reading the store, and
// nothing internal reaches the client.
func TestChallengeRefusesWithoutReadingTheStore(t *testing.T) {
	h, counted := challengeFixture(t)
	cases := []struct{ method, host, path string }{
		{"GET", "plain.test", challengePrefix + challengeToken},   // a site without ACME
		{"GET", "unknown.test", challengePrefix + challengeToken}, // no site
		{"GET", "", challengePrefix + challengeToken},
		{"GET", "acme.test", challengePrefix + "short"},
		{"GET", "acme.test", challengePrefix + strings.Repeat("a", 129)},
		{"GET", "acme.test", challengePrefix + "../../state/sites/acme.test"},
		{"GET", "acme.test", challengePrefix + challengeToken + "/x"},
		{"GET", "acme.test", challengePrefix + challengeToken + ".x"},
		{"GET", "acme.test", challengePrefix + challengeToken + "%0a"},
		{"GET", "acme.test", challengePrefix},
		{"POST", "acme.test", challengePrefix + challengeToken},
	}
	for _, c := range cases {
		code, body := challenge(h, c.method, c.host, c.path)
		if code != http.StatusNotFound || strings.TrimSpace(body) != "no such challenge" {
			t.Errorf("%s %s %q: %d %q", c.method, c.host, c.path, code, body)
		}
	}
	if n := counted.reads.Load(); n != 0 {
		t.Fatalf("refused requests read the store %d times", n)
	}
	// A well-formed token that the leader never stored: one read, 404.
	if code, body := challenge(h, "GET", "acme.test", challengePrefix+strings.Repeat("x", 43)); code != 404 || strings.TrimSpace(body) != "no such challenge" {
		t.Fatalf("unknown token: %d %q", code, body)
	}
}

// A flood of well-formed requests for a known host reads the store at a
// bounded rate; the rest get 429.
func TestChallengeReadsAreRateLimited(t *testing.T) {
	h, counted := challengeFixture(t)
	start := time.Now()
	limited := 0
	for i := range 300 {
		code, _ := challenge(h, "GET", "acme.test", challengePrefix+strings.Repeat("y", 40)+string(rune('a'+i%26))+"xyz")
		if code == http.StatusTooManyRequests {
			limited++
		}
	}
	allowed := challengeBurst + int64(time.Since(start).Seconds()*challengeReads) + 1
	if n := counted.reads.Load(); n > allowed {
		t.Fatalf("300 requests read the store %d times (at most %d allowed)", n, allowed)
	}
	if limited == 0 {
		t.Fatal("no request was limited")
	}
}

// When the store cannot be read the answer is 503 without the error.
func TestChallengeHidesInternalErrors(t *testing.T) {
	h, _ := challengeFixture(t)
	stored := h.cache.(*countingCache).Cache.(*stateCache)
	h.cache = &stateCache{store: stored.store, sealer: testSealer(t)} // another key: nothing opens
	code, body := challenge(h, "GET", "acme.test", challengePrefix+challengeToken)
	if code != http.StatusServiceUnavailable || strings.Contains(body, "acme") || strings.Contains(body, "seal") || strings.Contains(body, "cipher") {
		t.Fatalf("%d %q", code, body)
	}
}
