package hooks

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

func dep(v string) *model.Deployment {
	return &model.Deployment{App: "web", Version: v, SHA256: strings.Repeat(v, 64)[:64]}
}

// TestEvents checks which events each kind of site change makes, and that
// an event's ID depends on the change alone (a new leader deriving it
// again gets the same idempotency key).
func TestEvents(t *testing.T) {
	now := time.Now()
	site := func(d *model.Deployment, history ...model.Deployment) *state.Site {
		return &state.Site{Domain: "a.test", Deployment: d, History: history}
	}
	for _, tc := range []struct {
		name       string
		prev, next *state.Site
		want       string // "" for none
	}{
		{"created", nil, site(nil), model.EventSiteCreated},
		{"deleted", site(nil), nil, model.EventSiteDeleted},
		{"deleted, record unreadable", nil, nil, model.EventSiteDeleted},
		{"aliases changed", site(nil), &state.Site{Domain: "a.test", Aliases: []string{"www.a.test"}}, ""},
		{"first deploy", site(nil), site(dep("1")), model.EventDeployStarted},
		{"deploy", site(dep("1")), site(dep("2"), *dep("1")), model.EventDeployStarted},
		{"redeploy of the previous version", site(dep("2"), *dep("1")), site(dep("1"), *dep("2"), *dep("1")), model.EventDeployStarted},
		{"rollback", site(dep("2"), *dep("1")), site(dep("1")), model.EventDeployRolledBack},
		{"same deployment", site(dep("1")), site(dep("1")), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := state.SiteChange{Domain: "a.test", Prev: tc.prev, Next: tc.next, Revision: 42}
			got := Events(c, now)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("got %+v, want no event", got)
				}
				return
			}
			if len(got) != 1 || got[0].Type != tc.want || got[0].Site != "a.test" || got[0].Revision != 42 {
				t.Fatalf("got %+v, want one %s", got, tc.want)
			}
			again := Events(c, now.Add(time.Hour))
			if again[0].ID != got[0].ID {
				t.Errorf("the same change gave IDs %s and %s", got[0].ID, again[0].ID)
			}
			other := c
			other.Revision = 43
			if Events(other, now)[0].ID == got[0].ID {
				t.Error("another revision gave the same ID")
			}
		})
	}
}

// TestSignature checks the documented recipe: HMAC-SHA256 of
// "<t>.<body>", and that a changed body, another secret, a stale time or
// a malformed header fail.
func TestSignature(t *testing.T) {
	secret, body, now := []byte("whsec_0123456789abcdef"), []byte(`{"id":"evt_1"}`), time.Unix(1700000000, 0)
	h := Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1700000000,v1=") || len(h) != len("t=1700000000,v1=")+64 {
		t.Fatalf("signature %q", h)
	}
	if err := Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, err := range map[string]error{
		"changed body": Verify(secret, h, []byte(`{"id":"evt_2"}`), now, 5*time.Minute),
		"other secret": Verify([]byte("another-secret-0123"), h, body, now, 5*time.Minute),
		"stale":        Verify(secret, h, body, now.Add(time.Hour), 5*time.Minute),
		"malformed":    Verify(secret, "v1=abc", body, now, 5*time.Minute),
		"empty":        Verify(secret, "", body, now, 5*time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// TestValidateURL refuses what a hook must not point at or carry.
func TestValidateURL(t *testing.T) {
	for _, ok := range []string{"https://hooks.example.com/sitefleet", "http://127.0.0.1:9000/x?y=1", "https://[::1]:8443/"} {
		if err := ValidateURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "hooks.example.com", "ftp://x/", "file:///etc/passwd", "https://user:pw@x/", "https://x/#frag",
		"https:///nohost", "https://x/a b", "https://x/\r\nX-Injected: 1", "javascript:alert(1)", "https://" + strings.Repeat("a", 3000)} {
		if err := ValidateURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 1000: 5 * time.Minute} {
		if got := Backoff(n); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestNodeEvents checks which node record changes make events.
func TestNodeEvents(t *testing.T) {
	rec := func(ready, nginx bool, lastErr string, siteErrs map[string]string) []byte {
		b, _ := json.Marshal(cluster.NodeRecord{Ready: ready, NginxRunning: nginx, LastError: lastErr, SiteErrors: siteErrs})
		return b
	}
	good := rec(true, true, "", nil)
	for _, tc := range []struct {
		name       string
		prev, next []byte
		want       string
	}{
		{"joined", nil, good, model.EventNodeJoined},
		{"left", good, nil, model.EventNodeLeft},
		{"pass failed", good, rec(true, true, "apply web config: boom", nil), model.EventNodeUnhealthy},
		{"nginx down", good, rec(true, false, "", nil), model.EventNodeUnhealthy},
		{"draining", good, rec(false, true, "", nil), model.EventNodeUnhealthy},
		{"a site's error is no node event", good, rec(true, true, "", map[string]string{"a.test": "refused"}), ""},
		{"still unhealthy", rec(false, true, "", nil), rec(false, false, "", nil), ""},
		{"recovered", rec(false, true, "", nil), good, ""},
		{"garbage", []byte("{"), []byte("}"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NodeEvents(state.KVChange{Name: "node2", Prev: tc.prev, Next: tc.next, Revision: 7}, time.Now())
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("got %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Type != tc.want || got[0].Node != "node2" || got[0].Site != "" {
				t.Fatalf("got %+v, want one %s for node2", got, tc.want)
			}
		})
	}
}

// TestCertEvents checks certificate.issued (new, or a new serial) and
// certificate.failed (each new failure to obtain one).
func TestCertEvents(t *testing.T) {
	cert := func(serial string) []byte {
		b, _ := json.Marshal(model.Certificate{ID: "acme-a.test", Domains: []string{"a.test"}, Serial: serial, KeySealed: "v1:secret"})
		return b
	}
	for _, tc := range []struct {
		name       string
		prev, next []byte
		want       bool
	}{
		{"new", nil, cert("01"), true},
		{"renewed", cert("01"), cert("02"), true},
		{"same serial", cert("01"), cert("01"), false},
		{"deleted", cert("01"), nil, false},
	} {
		got := CertEvents(state.KVChange{Name: "acme-a.test", Prev: tc.prev, Next: tc.next, Revision: 5}, time.Now())
		if (len(got) == 1) != tc.want {
			t.Errorf("%s: %+v", tc.name, got)
		}
		if tc.want {
			if e := got[0]; e.Type != model.EventCertIssued || e.Certificate == nil || e.Certificate.ID != "acme-a.test" || e.Site != "" {
				t.Errorf("%s: event %+v", tc.name, e)
			}
			if b, _ := json.Marshal(got[0]); strings.Contains(string(b), "secret") {
				t.Errorf("%s: the event carries the sealed key: %s", tc.name, b)
			}
		}
	}
	status := func(state string, failures int) []byte {
		b, _ := json.Marshal(sftls.ACMEStatus{Name: "a.test", State: state, Error: "rate limited", Failures: failures})
		return b
	}
	for _, tc := range []struct {
		name       string
		prev, next []byte
		want       bool
	}{
		{"first failure", status("pending", 0), status("failed", 1), true},
		{"another failure", status("failed", 1), status("failed", 2), true},
		{"same failure rewritten", status("failed", 2), status("failed", 2), false},
		{"issued", status("pending", 0), status("issued", 0), false},
		{"failure without a previous record", nil, status("failed", 1), true},
	} {
		got := ACMEEvents(state.KVChange{Name: "a.test", Prev: tc.prev, Next: tc.next, Revision: 6}, time.Now())
		if (len(got) == 1) != tc.want {
			t.Errorf("%s: %+v", tc.name, got)
		}
		if tc.want && (got[0].Type != model.EventCertFailed || got[0].Errors["a.test"] != "rate limited") {
			t.Errorf("%s: event %+v", tc.name, got[0])
		}
	}
}
