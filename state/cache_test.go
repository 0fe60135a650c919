package state_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// The cache holds what a node serves when it starts without etcd: what
// Save wrote, Load must give back whole, and a file that is cut short,
// belongs to another prefix or is missing must be refused, not half
// served.
func TestCacheRoundTrip(t *testing.T) {
	c := state.Cache{Path: filepath.Join(t.TempDir(), "state-cache.json"), Prefix: "/p"}
	if _, _, err := c.Load(); !state.IsNotExist(err) {
		t.Fatalf("no cache yet: %v", err)
	}
	snap := &state.Snapshot{Revision: 42, Unreadable: map[string]string{"bad.test": "garbage"},
		Certificates: []state.Certificate{{ID: "wild", ChainPEM: "chain", KeySealed: "sealed", Revision: 7}}}
	for i := range 1000 {
		snap.Sites = append(snap.Sites, state.Site{Domain: fmt.Sprintf("s%04d.test", i), Aliases: []string{fmt.Sprintf("www.s%04d.test", i)}, Revision: int64(i + 1)})
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if err := c.Save(snap, at); err != nil {
		t.Fatal(err)
	}
	got, gotAt, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(got) != jsonOf(snap) || !gotAt.Equal(at) {
		t.Fatalf("loaded %s at %s\nsaved %s at %s", jsonOf(got), gotAt, jsonOf(snap), at)
	}
	if fi, err := os.Stat(c.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode: %v %v", fi.Mode(), err)
	}

	whole, err := os.ReadFile(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path, whole[:len(whole)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Load(); err == nil || !strings.Contains(err.Error(), "of 1000") {
		t.Errorf("a cache cut short: %v", err)
	}
	if _, _, err := (state.Cache{Path: c.Path, Prefix: "/other"}).Load(); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("another prefix's cache: %v", err)
	}

	// Headers that do not describe what follows are refused.
	for name, head := range map[string]string{
		"a negative count":          `{"version":2,"prefix":"/p","snapshot":{"revision":1},"sites":-1}`,
		"sites inside the header":   `{"version":2,"prefix":"/p","snapshot":{"revision":1,"sites":[{"domain":"a.test"}]},"sites":0}`,
		"an unknown version":        `{"version":9,"prefix":"/p","snapshot":{"revision":1},"sites":0}`,
		"no snapshot":               `{"version":2,"prefix":"/p","sites":0}`,
		"more sites than follow":    `{"version":2,"prefix":"/p","snapshot":{"revision":1},"sites":3}` + "\n" + `{"domain":"a.test"}`,
		"a site that is not JSON":   `{"version":2,"prefix":"/p","snapshot":{"revision":1},"sites":1}` + "\n" + `{"domain":`,
		"a header that is not JSON": `{"version":2,`,
	} {
		if err := os.WriteFile(c.Path, []byte(head), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _, err := c.Load(); err == nil || state.IsNotExist(err) {
			t.Errorf("%s: loaded %+v, %v; want an error", name, got, err)
		}
	}

	// A node upgraded while etcd is down still serves the cache the
	// version before wrote (one JSON document).
	old, err := json.Marshal(map[string]any{"version": 1, "prefix": "/p", "appliedAt": at, "snapshot": snap})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _, err := c.Load(); err != nil || jsonOf(got) != jsonOf(snap) {
		t.Errorf("version 1 cache: %v", err)
	}
}
