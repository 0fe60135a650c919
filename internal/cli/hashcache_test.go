package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestHashCache(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	for name, body := range map[string]string{"a.html": "aaaa", "sub/b.css": "bbbb"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	got := func(checksum bool) map[string]string {
		t.Helper()
		files, err := hashDir(ctx, dir, checksum)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range files {
			out[f.entry.Path] = f.entry.SHA256
		}
		return out
	}
	if h := got(false); h["a.html"] != digest("aaaa") || h["sub/b.css"] != digest("bbbb") {
		t.Fatalf("digests %v", h)
	}
	// Make the cache look written an hour from now (its entries then
	// count as settled) with a wrong digest for a.html: a lookup that
	// trusts it returns it.
	c := openHashCache(dir)
	b, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines[0] = "sitefleet-hashes 2 " + strconv.FormatInt(time.Now().Add(time.Hour).UnixNano(), 10)
	bogus := strings.Repeat("f", 64)
	text := strings.Replace(strings.Join(lines, "\n"), digest("aaaa"), bogus, 1)
	if err := os.WriteFile(c.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if h := got(false); h["a.html"] != bogus {
		t.Fatalf("an unchanged file was hashed again (%s): the cache is not used", h["a.html"])
	}
	if h := got(true); h["a.html"] != digest("aaaa") {
		t.Fatalf("--checksum used the cache: %s", h["a.html"])
	}
	// Rewrite the cache as settled again, then change a.html keeping its
	// size and modification time: the change time gives it away.
	if err := os.WriteFile(c.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a.html")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(p, []byte("AAAA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if h := got(false); h["a.html"] != digest("AAAA") {
		t.Fatalf("a file changed under the same size and mtime kept its old digest %s", h["a.html"])
	}
}
