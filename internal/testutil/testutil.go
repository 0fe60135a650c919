// Package testutil holds helpers shared by sitefleet's tests.
package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WorldReadableTempDir returns a temporary directory that nginx workers,
// which run as nobody when the tests run as root, can read: t.TempDir and
// its parent are created 0700.
func WorldReadableTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
