package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestTreeEncodingIsCanonical(t *testing.T) {
	files := map[string]string{"a": "1", "a-b": "2", "b/c": "3", "b.x": "4", "b/c.d/e": "5"}
	delete(files, "b/c") // b/c and b/c.d/e may both exist: c is not c.d
	files["b/c"] = "3"
	var entries []TreeEntry
	for p, body := range files {
		entries = append(entries, TreeEntry{Path: p, SHA256: digestOf(body), Size: int64(len(body)), Mode: 0o644})
	}
	enc, digest, err := EncodeTree(entries)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	if want := []string{"a", "a-b", "b/c", "b/c.d/e", "b.x"}; !slices.Equal(paths, want) {
		t.Fatalf("order %v, want %v", paths, want)
	}
	if h := sha256.Sum256(enc); hex.EncodeToString(h[:]) != digest {
		t.Fatal("the digest is not the SHA-256 of the encoding")
	}
	back, err := DecodeTree(enc, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	enc2, digest2, err := EncodeTree(back)
	if err != nil || digest2 != digest || !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip changed the encoding: %v", err)
	}
}

func TestTreeRefusals(t *testing.T) {
	d := digestOf("x")
	line := func(rest string) string { return treeHeader + rest }
	for _, tc := range []struct{ name, enc, want string }{
		{"no header", d + " 1 644 a\n", "first line"},
		{"other version", "sitefleet-tree 2\n", "first line"},
		{"upper-case digest", line(strings.ToUpper(d) + " 1 644 a\n"), "SHA-256"},
		{"short digest", line(d[:10] + " 1 644 a\n"), "SHA-256"},
		{"leading zero", line(d + " 01 644 a\n"), "leading zeros"},
		{"negative size", line(d + " -1 644 a\n"), "decimal"},
		{"mode 600", line(d + " 1 600 a\n"), "not 644 or 755"},
		{"missing path", line(d + " 1 644\n"), "want"},
		{"empty path", line(d + " 1 644 \n"), "empty name"},
		{"dot dot", line(d + " 1 644 ../etc/passwd\n"), ".."},
		{"inner dot dot", line(d + " 1 644 a/../b\n"), ".."},
		{"absolute", line(d + " 1 644 /etc/passwd\n"), "absolute"},
		{"double slash", line(d + " 1 644 a//b\n"), "clean"},
		{"dot element", line(d + " 1 644 a/./b\n"), "clean"},
		{"dot slash prefix", line(d + " 1 644 ./a\n"), "canonical"},
		{"trailing slash", line(d + " 1 644 a/\n"), "clean"},
		{"backslash", line(d + " 1 644 a\\b\n"), "backslash"},
		{"control character", line(d + " 1 644 a\rb\n"), "control"},
		{"invalid UTF-8", line(d + " 1 644 a\xffb\n"), "UTF-8"},
		{"duplicate", line(d + " 1 644 a\n" + d + " 1 644 a\n"), "twice"},
		{"out of order", line(d + " 1 644 b\n" + d + " 1 644 a\n"), "out of order"},
		{"slash sorts first", line(d + " 1 644 a-b\n" + d + " 1 644 a/b\n"), "out of order"},
		{"file and directory", line(d + " 1 644 a\n" + d + " 1 644 a/b\n"), "file and the directory"},
		{"no final newline", line(d + " 1 644 a"), "newline"},
		{"line too long", line(d + " 1 644 " + strings.Repeat("a", 2000) + "\n"), "longer"},
	} {
		_, err := DecodeTree([]byte(tc.enc), Limits{MaxPathLength: 1024})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
		var te *TreeError
		var le *LimitError
		if err != nil && !errors.As(err, &te) && !errors.As(err, &le) {
			t.Errorf("%s: %T, want *TreeError or *LimitError", tc.name, err)
		}
	}
	three := treeHeader + d + " 1 644 a\n" + d + " 1 644 b\n" + d + " 1 644 c\n"
	if _, err := DecodeTree([]byte(three), Limits{MaxFiles: 2}); !isLimit(err, LimitFileCount) {
		t.Errorf("three files over a limit of two: %v", err)
	}
	if _, err := DecodeTree([]byte(three), Limits{MaxUnpackedBytes: 2}); !isLimit(err, LimitUnpackedSize) {
		t.Errorf("three bytes over a limit of two: %v", err)
	}
}

func isLimit(err error, what string) bool {
	var le *LimitError
	return errors.As(err, &le) && le.What == what
}

// FuzzReadTree: the decoder never panics, and what it accepts is
// canonical (it encodes back to the same bytes) and holds only paths that
// stay inside a release.
func FuzzReadTree(f *testing.F) {
	d := digestOf("x")
	f.Add([]byte(treeHeader + d + " 1 644 a\n" + d + " 2 755 b/c\n"))
	f.Add([]byte(treeHeader + d + " 1 644 ../a\n"))
	f.Add([]byte(treeHeader))
	f.Add([]byte("sitefleet-tree 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeTree(b, Limits{MaxPathLength: 256, MaxFiles: 1000})
		if err != nil {
			return
		}
		for _, e := range entries {
			if !filepath.IsLocal(e.Path) || strings.Contains(e.Path, "\\") {
				t.Fatalf("accepted path %q", e.Path)
			}
		}
		enc, _, err := EncodeTree(entries)
		if err != nil {
			t.Fatalf("accepted tree does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("accepted a non-canonical encoding:\n%q\nencodes as\n%q", b, enc)
		}
	})
}

// entriesOf is the tree entries of files (path -> content).
func entriesOf(files map[string]string) []TreeEntry {
	var entries []TreeEntry
	for p, body := range files {
		entries = append(entries, TreeEntry{Path: p, SHA256: digestOf(body), Size: int64(len(body)), Mode: 0o644})
	}
	return entries
}

// putFiles stores each body as an object and returns the tree's digest.
func putFiles(t *testing.T, s *Store, files map[string]string) string {
	t.Helper()
	ctx := context.Background()
	for _, body := range files {
		if err := s.PutObject(ctx, strings.NewReader(body), digestOf(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	digest, err := s.putTree(ctx, entriesOf(files))
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestMaterializeSharesObjects(t *testing.T) {
	e := newTestEnv(t, Limits{})
	s := e.store
	ctx := context.Background()
	sentinel := snapshot(t, e.sentinel)
	v1 := putFiles(t, s, map[string]string{"index.html": "one", "assets/app.js": "shared", "assets/logo.svg": "<svg/>"})
	v2 := putFiles(t, s, map[string]string{"index.html": "two", "assets/app.js": "shared"})
	for _, tree := range []string{v1, v2} {
		info, err := s.Materialize(ctx, tree)
		if err != nil {
			t.Fatal(err)
		}
		if info.Format != FormatTree || info.SHA256 != tree || !s.Has(tree) {
			t.Fatalf("info %+v", info)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root(v2), "index.html")); string(b) != "two" {
		t.Fatalf("v2 index.html = %q", b)
	}
	if _, err := os.Stat(filepath.Join(s.Root(v2), "assets", "logo.svg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("v2 holds a file of v1")
	}
	a, b, o := inode(t, filepath.Join(s.Root(v1), "assets/app.js")), inode(t, filepath.Join(s.Root(v2), "assets/app.js")), inode(t, s.objectPath(digestOf("shared")))
	if a != b || a != o {
		t.Fatal("a file two releases share is stored more than once")
	}
	// The release is idempotent and the sentinel beside the store untouched.
	if _, err := s.Materialize(ctx, v1); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, sentinel, snapshot(t, e.sentinel))
}

func TestMaterializeNamesMissingObjects(t *testing.T) {
	s := newTestEnv(t, Limits{}).store
	ctx := context.Background()
	entries := []TreeEntry{
		{Path: "a", SHA256: digestOf("a"), Size: 1, Mode: 0o644},
		{Path: "b", SHA256: digestOf("b"), Size: 1, Mode: 0o644},
		{Path: "c", SHA256: digestOf("a"), Size: 1, Mode: 0o644},
	}
	if err := s.PutObject(ctx, strings.NewReader("b"), digestOf("b"), 1); err != nil {
		t.Fatal(err)
	}
	tree, err := s.putTree(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Materialize(ctx, tree)
	var me *MissingObjectsError
	if !errors.As(err, &me) || !slices.Equal(me.Missing, []string{digestOf("a")}) {
		t.Fatalf("materialize with one object missing: %v", err)
	}
	if s.Has(tree) {
		t.Fatal("a partial release is visible")
	}
	if err := s.PutObject(ctx, strings.NewReader("x"), digestOf("a"), 1); err == nil || s.HasObject(digestOf("a")) {
		t.Fatalf("object with other bytes: %v", err)
	}
	if err := s.PutObject(ctx, strings.NewReader("a"), digestOf("a"), 2); err == nil || s.HasObject(digestOf("a")) {
		t.Fatalf("truncated object: %v", err)
	}
	if err := s.PutObject(ctx, strings.NewReader("a"), digestOf("a"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Materialize(ctx, tree); err != nil {
		t.Fatal(err)
	}
}

func TestTreeOfArchiveAndPrune(t *testing.T) {
	s := newTestEnv(t, Limits{}).store
	ctx := context.Background()
	archive := makeTar(t, tdir("assets/"), tfile("assets/app.js", "shared"), tfile("index.html", "one"))
	info, err := s.Ingest(ctx, bytes.NewReader(archive), "")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := s.TreeOf(ctx, info.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	want := putFiles(t, s, map[string]string{"assets/app.js": "shared", "index.html": "one"})
	if tree != want {
		t.Fatal("an archive's tree differs from the tree of the same files")
	}
	if _, err := s.Materialize(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(info.SHA256); err != nil {
		t.Fatal(err)
	}
	other := putFiles(t, s, map[string]string{"gone.html": "gone"})
	if n, err := s.PruneObjects(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("prune within the grace removed %d: %v", n, err)
	}
	if n, err := s.PruneObjects(ctx, -time.Second); err != nil || n != 2 {
		t.Fatalf("prune removed %d, want 2 (gone.html and its tree): %v", n, err)
	}
	for _, sha := range []string{tree, digestOf("shared"), digestOf("one")} {
		if !s.HasObject(sha) {
			t.Fatalf("prune removed %s, which a kept release uses", sha)
		}
	}
	if s.HasObject(other) || s.HasObject(digestOf("gone")) {
		t.Fatal("prune kept objects no release uses")
	}
	if err := s.Remove(tree); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PruneObjects(ctx, -time.Second); n != 5 {
		t.Fatalf("after the last release went, prune removed %d, want 5 (three objects, two directories)", n)
	}
}

func TestOverlay(t *testing.T) {
	s := newTestEnv(t, Limits{})
	ctx := context.Background()
	v1 := putFiles(t, s.store, map[string]string{
		"index.html": "v1", "assets/a.1.js": "a1", "assets/x": "file x", "assets/y/z.js": "z1", "_redirects": "/a /b 301\n", "old.html": "old",
	})
	v2 := putFiles(t, s.store, map[string]string{
		"index.html": "v2", "assets/a.2.js": "a2", "assets/x/inner.js": "x is a directory now", "assets/y": "y is a file now",
	})
	keep := func(p string) bool { return strings.HasPrefix(p, "assets/") || p == "_redirects" }
	ov, err := s.store.Overlay(ctx, v2, []string{v1, strings.Repeat("f", 64)}, keep)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	if err := s.store.readTree(ov, func(e TreeEntry) error {
		b, err := os.ReadFile(filepath.Join(s.store.Root(ov), e.Path))
		got[e.Path] = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"index.html": "v2", "assets/a.2.js": "a2", "assets/x/inner.js": "x is a directory now", "assets/y": "y is a file now",
		"assets/a.1.js": "a1", // kept: under the pattern, lacking in v2
	}
	if !maps.Equal(got, want) {
		t.Fatalf("overlay holds %v, want %v", got, want)
	}
}

func TestOpenStoreRemovesHalfWrittenObjects(t *testing.T) {
	e := newTestEnv(t, Limits{})
	putFiles(t, e.store, map[string]string{"a": "kept"})
	half := filepath.Join(e.dir, objectsDirName, digestOf("x")[:2], objectTempPrefix+"123")
	if err := os.MkdirAll(filepath.Dir(half), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(half, []byte("half"), 0o444); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(e.dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) || !s.HasObject(digestOf("kept")) {
		t.Fatalf("after reopening: half-written object %v, kept object present %v", err, s.HasObject(digestOf("kept")))
	}
}

func TestReleasesShareUnchangedDirectories(t *testing.T) {
	s := newTestEnv(t, Limits{}).store
	ctx := context.Background()
	v1 := putFiles(t, s, map[string]string{"index.html": "1", "lib/a.js": "a", "lib/deep/b.js": "b", "img/c.png": "c"})
	v2 := putFiles(t, s, map[string]string{"index.html": "1", "lib/a.js": "a", "lib/deep/b.js": "b", "img/c.png": "C"})
	for _, v := range []string{v1, v2} {
		if _, err := s.Materialize(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	target := func(release, dir string) string {
		t.Helper()
		rootLink, err := os.Readlink(s.Root(release))
		if err != nil {
			t.Fatal(err)
		}
		l, err := os.Readlink(filepath.Join(s.dir, rootLink, dir))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Base(l)
	}
	if target(v1, "lib") != target(v2, "lib") {
		t.Fatal("an unchanged directory was built twice")
	}
	if target(v1, "img") == target(v2, "img") {
		t.Fatal("a changed directory is shared")
	}
	for p, want := range map[string]string{"index.html": "1", "lib/deep/b.js": "b", "img/c.png": "C"} {
		if b, err := os.ReadFile(filepath.Join(s.Root(v2), p)); err != nil || string(b) != want {
			t.Fatalf("v2 %s = %q, %v", p, b, err)
		}
	}
	oldImg := target(v1, "img")
	if err := s.Remove(v1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneObjects(ctx, -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dirPath(oldImg)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the directory only v1 used was kept")
	}
	if b, err := os.ReadFile(filepath.Join(s.Root(v2), "lib/deep/b.js")); err != nil || string(b) != "b" {
		t.Fatalf("after pruning, v2 lib/deep/b.js = %q, %v", b, err)
	}
}
