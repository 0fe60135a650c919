package deploy

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCleanEntryName(t *testing.T) {
	cases := []struct {
		raw    string
		dir    bool
		want   string
		skip   bool
		reason string // "" accepted; "limit" for a *LimitError
	}{
		{raw: "index.html", want: "index.html"},
		{raw: "./index.html", want: "index.html"},
		{raw: "a/b/c.txt", want: "a/b/c.txt"},
		{raw: "dir/", dir: true, want: "dir"},
		{raw: "./dir/", dir: true, want: "dir"},
		{raw: "dir", dir: true, want: "dir"},
		{raw: "ünï ✓.html", want: "ünï ✓.html"},
		{raw: "ab:c.html", want: "ab:c.html"},
		{raw: "a:b.html", reason: "absolute path"}, // looks like a Windows volume
		{raw: "..foo", want: "..foo"},
		{raw: ".hidden", want: ".hidden"},
		{raw: "", dir: true, skip: true},
		{raw: ".", dir: true, skip: true},
		{raw: "./", dir: true, skip: true},
		{raw: "", reason: "empty name"},
		{raw: ".", reason: "empty name"},
		{raw: "dir/", reason: "not clean"},
		{raw: "dir//", dir: true, reason: "not clean"},
		{raw: "a//b", reason: "not clean"},
		{raw: "a/./b", reason: "not clean"},
		{raw: "././a", reason: "not clean"},
		{raw: "a/.", reason: "not clean"},
		{raw: "..", reason: "escapes"},
		{raw: "../a", reason: "escapes"},
		{raw: "./../a", reason: "escapes"},
		{raw: "a/../../b", reason: "escapes"},
		{raw: "a/..", reason: `".."`},
		{raw: "a/../b", reason: `".."`},
		{raw: "../", dir: true, reason: "escapes"},
		{raw: "/etc/passwd", reason: "absolute path"},
		{raw: "/", dir: true, reason: "absolute path"},
		{raw: ".//etc", reason: "absolute path"},
		{raw: "C:/x", reason: "absolute path"},
		{raw: "c:x", reason: "absolute path"},
		{raw: `C:\x`, reason: "backslash"},
		{raw: `a\b`, reason: "backslash"},
		{raw: "a\x00b", reason: "NUL"},
		{raw: "a\nb", reason: "control"},
		{raw: "a\rb", reason: "control"},
		{raw: "a\x7fb", reason: "control"},
		{raw: "a\u0085b", reason: "control"},
		{raw: "a\xffb", reason: "UTF-8"},
		{raw: "a\xc0\xafb", reason: "UTF-8"},
		{raw: strings.Repeat("x", 256), reason: "longer than 255"},
		{raw: strings.Repeat("x", 255), want: strings.Repeat("x", 255)},
		{raw: strings.Repeat("a/", 150) + "b", want: strings.Repeat("a/", 150) + "b"},
		{raw: strings.Repeat("a/", 151) + "b", reason: "limit"},
	}
	for _, c := range cases {
		name, skip, err := cleanEntryName(c.raw, c.dir, 301)
		switch {
		case c.reason == "limit":
			var le *LimitError
			if !errors.As(err, &le) || le.What != LimitPathLength {
				t.Errorf("%q: got %v, want a path length LimitError", c.raw, err)
			}
		case c.reason != "":
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry != c.raw || !strings.Contains(ee.Reason, c.reason) {
				t.Errorf("%q (dir %v): got (%q, %v, %v), want reason %q", c.raw, c.dir, name, skip, err, c.reason)
			}
		case err != nil || name != c.want || skip != c.skip:
			t.Errorf("%q (dir %v): got (%q, %v, %v), want (%q, %v)", c.raw, c.dir, name, skip, err, c.want, c.skip)
		}
	}
}

// checkAcceptedName fails if an accepted name is not a safe relative path.
func checkAcceptedName(t testing.TB, raw, name string, maxLen int) {
	t.Helper()
	switch {
	case name == "" || name == ".":
		t.Fatalf("%q accepted as the empty name %q", raw, name)
	case len(raw) > maxLen:
		t.Fatalf("%q accepted although longer than %d", raw, maxLen)
	case !utf8.ValidString(name):
		t.Fatalf("%q accepted as invalid UTF-8 %q", raw, name)
	case path.IsAbs(name) || filepath.IsAbs(name) || hasDriveLetter(name):
		t.Fatalf("%q accepted as absolute %q", raw, name)
	case path.Clean(name) != name || !filepath.IsLocal(name):
		t.Fatalf("%q accepted as unclean %q", raw, name)
	case strings.ContainsAny(name, "\\\x00"):
		t.Fatalf("%q accepted with a backslash or NUL: %q", raw, name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." || elem == "." || elem == "" || len(elem) > 255 {
			t.Fatalf("%q accepted with element %q", raw, elem)
		}
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			t.Fatalf("%q accepted with control character %q", raw, r)
		}
	}
	if !strings.HasSuffix(raw, name) && !strings.HasSuffix(raw, name+"/") {
		t.Fatalf("%q accepted as %q, which is not the raw name minus a prefix", raw, name)
	}
}

// FuzzEntryName checks that every name the validator accepts is a
// relative, clean, valid UTF-8 path without ".." elements, and that it
// never panics.
func FuzzEntryName(f *testing.F) {
	for _, s := range []string{"a", "./a", "a/b/", "../a", "/etc/passwd", "a//b", "a/./b", "C:x", `a\b`, "a\x00b", "\xff", "ü/ö", ".", "./", "..", "a/..", strings.Repeat("x/", 40)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, isDir bool) {
		const maxLen = 64
		name, skip, err := cleanEntryName(raw, isDir, maxLen)
		if err != nil {
			if !isTypedError(err) {
				t.Fatalf("%q: untyped error %v", raw, err)
			}
			return
		}
		if skip {
			if !isDir || path.Clean("/"+raw) != "/" || strings.Contains(raw, "..") || strings.HasPrefix(raw, "/") {
				t.Fatalf("%q (dir %v) skipped", raw, isDir)
			}
			return
		}
		checkAcceptedName(t, raw, name, maxLen)
	})
}
