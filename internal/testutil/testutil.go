// Package testutil holds helpers shared by sitefleet's tests.
package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Ports handed out by FreeAddr lie below Linux's default ephemeral range
// (32768-60999), so the kernel never gives one of them to a listener on
// port 0 or to an outgoing connection between the moment FreeAddr checks
// it and the moment a server binds it.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portsMu sync.Mutex
	used    = map[int]bool{}
)

// FreeAddr returns a loopback host:port that is free now, outside the
// ephemeral port range, and not handed out before by this process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if used[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		used[p] = true
		return l.Addr().String()
	}
	t.Fatalf("no free loopback port between %d and %d", portLow, portHigh)
	return ""
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

// TarGz builds a .tar.gz holding the given regular files (path ->
// contents), in path order.
func TarGz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Eventually retries f every 20 ms until it returns nil, and fails the
// test with what and f's last error once timeout has passed. It returns
// how long it took.
func Eventually(t testing.TB, what string, timeout time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor is Eventually for a condition.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	return Eventually(t, what, timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("the condition does not hold yet")

// LockedBuffer is a bytes.Buffer safe for concurrent writers and readers
// (a node's log, a command's progress read while it runs).
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
