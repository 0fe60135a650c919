package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// writeFiles creates a bundle root holding files (name -> content).
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoad(t *testing.T) {
	root := writeFiles(t, map[string]string{
		RedirectsFile: "/old /new\n/* /index.html 200\n",
		HeadersFile:   "/*\n  X-Frame-Options: DENY\n",
		"index.html":  "<p>hi</p>",
	})
	got, err := Load(root, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Manifest{
		Redirects: []Redirect{
			{Line: 1, From: lit("/old", "old"), To: "/new", Status: 301},
			{Line: 2, From: pat("/*", []string{"*"}, nil, true), To: "/index.html", Status: 200},
		},
		Headers: []HeaderRule{
			{Line: 1, Path: pat("/*", []string{"*"}, nil, true), Headers: []Header{{"X-Frame-Options", "DENY"}}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestLoadMissingFiles(t *testing.T) {
	got, err := Load(t.TempDir(), Limits{})
	if err != nil || !reflect.DeepEqual(got, Manifest{}) {
		t.Errorf("Load(empty root) = %+v, %v; want an empty manifest", got, err)
	}
	root := writeFiles(t, map[string]string{HeadersFile: "/a\n  X-A: 1"})
	got, err = Load(root, Limits{})
	if err != nil || got.Redirects != nil || len(got.Headers) != 1 {
		t.Errorf("Load(only _headers) = %+v, %v", got, err)
	}
}

func TestLoadRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		file  string
		line  int
		want  string
	}{
		{"directory named _redirects", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, RedirectsFile))
		}, RedirectsFile, 0, "must be a regular file, not a directory"},
		{"directory named _headers", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, HeadersFile))
		}, HeadersFile, 0, "not a directory"},
		{"symbolic link", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "real"), "/a /b")
			symlink(t, "real", filepath.Join(root, RedirectsFile))
		}, RedirectsFile, 0, "not a symbolic link"},
		{"dangling symbolic link", func(t *testing.T, root string) {
			symlink(t, "/nonexistent", filepath.Join(root, HeadersFile))
		}, HeadersFile, 0, "not a symbolic link"},
		{"bad redirect line", func(t *testing.T, root string) {
			write(t, filepath.Join(root, RedirectsFile), "/a /b\n/c /d$")
		}, RedirectsFile, 2, "'$'"},
		{"bad headers line", func(t *testing.T, root string) {
			write(t, filepath.Join(root, HeadersFile), "/a\n  X-A: ${x}")
		}, HeadersFile, 2, "'$'"},
		{"file too large", func(t *testing.T, root string) {
			write(t, filepath.Join(root, RedirectsFile), string(make([]byte, 1<<20+1)))
		}, RedirectsFile, 0, "MaxFileBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			got, err := Load(root, Limits{})
			if !reflect.DeepEqual(got, Manifest{}) {
				t.Errorf("got %+v with an error", got)
			}
			wantLineError(t, err, tt.file, tt.line, tt.want)
		})
	}
}

func TestLoadBadRoot(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing"), Limits{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing root) error = %v, want ErrNotExist", err)
	}
	root := writeFiles(t, map[string]string{"f": ""})
	if _, err := Load(filepath.Join(root, "f"), Limits{}); err == nil {
		t.Error("Load(a regular file) succeeded")
	}
}

// mkdir creates a directory or fails t.
func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// write creates a file or fails t.
func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// symlink creates a symbolic link or skips t where that is impossible.
func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Skipf("symlink: %v", err)
	}
}
