package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testEnv is a store in base/store next to a sentinel directory
// base/sentinel that no ingest may touch.
type testEnv struct {
	base     string
	dir      string
	sentinel string
	store    *Store
}

// newTestEnv opens a store with limits in a fresh temp directory.
func newTestEnv(t testing.TB, limits Limits) *testEnv {
	t.Helper()
	base := t.TempDir()
	e := &testEnv{base: base, dir: filepath.Join(base, "store"), sentinel: filepath.Join(base, "sentinel")}
	if err := os.MkdirAll(filepath.Join(e.sentinel, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.sentinel, "sub", "keep.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(e.dir, limits)
	if err != nil {
		t.Fatal(err)
	}
	e.store = s
	return e
}

// snapshot describes every file and directory under dir (type, mode,
// size, content hash, link target), keyed by relative path.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" %d %x", len(b), sum[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return out
}

// state is a snapshot of the whole environment: the base directory (store
// and sentinel included).
func (e *testEnv) state(t testing.TB) map[string]string {
	t.Helper()
	return snapshot(t, e.base)
}

// assertSameState fails if the environment differs from before.
func assertSameState(t testing.TB, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if before[k] != after[k] {
			t.Errorf("after: %s: %s (before: %q)", k, after[k], before[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			t.Errorf("gone: %s (%s)", k, before[k])
		}
	}
	t.Fatalf("the store or its surroundings changed")
}

// ingestBytes ingests b with no expected hash.
func (e *testEnv) ingestBytes(t testing.TB, b []byte) (Info, error) {
	t.Helper()
	return e.store.Ingest(context.Background(), bytes.NewReader(b), "")
}

// sha256Hex returns the lower-case hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// errCheck checks the error of a refused archive.
type errCheck func(t testing.TB, err error)

// wantEntry wants an *EntryError for entry whose reason contains reason.
func wantEntry(entry, reason string) errCheck {
	return func(t testing.TB, err error) {
		t.Helper()
		var ee *EntryError
		if !errors.As(err, &ee) {
			t.Fatalf("got %T %v, want *EntryError", err, err)
		}
		if ee.Entry != entry || !strings.Contains(ee.Reason, reason) {
			t.Fatalf("got entry %q reason %q, want entry %q reason containing %q", ee.Entry, ee.Reason, entry, reason)
		}
		if !strings.HasPrefix(ee.Error(), "archive entry \"") {
			t.Fatalf("Error() = %q", ee.Error())
		}
	}
}

// wantLimit wants a *LimitError about what.
func wantLimit(what string) errCheck {
	return func(t testing.TB, err error) {
		t.Helper()
		var le *LimitError
		if !errors.As(err, &le) || le.What != what {
			t.Fatalf("got %T %v, want *LimitError %q", err, err, what)
		}
	}
}

// wantFormat wants a *FormatError.
func wantFormat() errCheck {
	return func(t testing.TB, err error) {
		t.Helper()
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("got %T %v, want *FormatError", err, err)
		}
	}
}

// wantMismatch wants a *HashMismatchError.
func wantMismatch() errCheck {
	return func(t testing.TB, err error) {
		t.Helper()
		var he *HashMismatchError
		if !errors.As(err, &he) {
			t.Fatalf("got %T %v, want *HashMismatchError", err, err)
		}
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// isTypedError reports whether err is one of the package's archive errors.
func isTypedError(err error) bool {
	var ee *EntryError
	var le *LimitError
	var fe *FormatError
	return errors.As(err, &ee) || errors.As(err, &le) || errors.As(err, &fe)
}
