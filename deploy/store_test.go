package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenStoreCleansLeftovers(t *testing.T) {
	e := newTestEnv(t, Limits{})
	b := goodArchives(t)[FormatTar]
	info, err := e.ingestBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	bundle := snapshot(t, e.store.Root(info.SHA256))
	orphan := sha256Hex([]byte("orphan"))
	leftovers := map[string]string{
		"tmp/ingest-123.archive":          "partial upload",
		"tmp/stage-456/site/index.html":   "half extracted",
		"tmp/remove-789/bundle/a.html":    "half removed",
		"tmp/info-1.json":                 "{}",
		orphan + archiveSuffix:            "archive without a directory",
		orphan + infoSuffix:               "{}",
		"README":                          "not ours: kept",
		strings.Repeat("z", 64) + ".json": "not a hash: kept",
	}
	for name, body := range leftovers {
		p := filepath.Join(e.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStore(e.dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e.store = s
	for _, name := range []string{"README", strings.Repeat("z", 64) + ".json"} {
		if err := os.Remove(filepath.Join(e.dir, name)); err != nil {
			t.Fatalf("%s was not kept: %v", name, err)
		}
	}
	checkStored(t, e, info, wantInfo(FormatTar, b), b)
	assertSameState(t, bundle, snapshot(t, e.store.Root(info.SHA256)))
}

func TestOpenStoreLimits(t *testing.T) {
	if _, err := OpenStore(t.TempDir(), Limits{MaxFiles: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
	s, err := OpenStore(t.TempDir(), Limits{MaxFiles: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultLimits()
	want.MaxFiles = 7
	if s.Limits() != want {
		t.Fatalf("Limits = %+v, want %+v", s.Limits(), want)
	}
	d := DefaultLimits()
	if d.MaxArchiveBytes != 512<<20 || d.MaxUnpackedBytes != 2<<30 || d.MaxFiles != 100000 || d.MaxPathLength != 1024 {
		t.Fatalf("DefaultLimits = %+v", d)
	}
	if (Limits{}).WithDefaults() != d {
		t.Fatal("WithDefaults of zero limits is not DefaultLimits")
	}
}

// countdownCtx is a context whose Err turns to context.Canceled after n
// calls, to cancel Ingest at a chosen point.
type countdownCtx struct {
	context.Context
	n atomic.Int64
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestIngestCancel(t *testing.T) {
	archive := manyFilesTarGz(t, 300)
	cancelledBefore, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  func() context.Context
		r    func(cancel context.CancelFunc) io.Reader
	}{
		{name: "before", ctx: func() context.Context { return cancelledBefore }},
		{name: "while reading", r: func(cancel context.CancelFunc) io.Reader {
			return &cancelAfterReader{r: strings.NewReader(string(archive)), cancel: cancel, after: 1}
		}},
		{name: "while extracting", ctx: func() context.Context {
			c := &countdownCtx{Context: context.Background()}
			c.n.Store(100)
			return c
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, Limits{})
			before := e.state(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var r io.Reader = strings.NewReader(string(archive))
			if c.ctx != nil {
				ctx = c.ctx()
			}
			if c.r != nil {
				r = c.r(cancel)
			}
			_, err := e.store.Ingest(ctx, r, "")
			t.Logf("Ingest: %v", err)
			if !errors.Is(err, context.Canceled) || isTypedError(err) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			assertSameState(t, before, e.state(t))
		})
	}
}

// cancelAfterReader cancels its context after a number of reads.
type cancelAfterReader struct {
	r      io.Reader
	cancel context.CancelFunc
	after  int
}

func (c *cancelAfterReader) Read(p []byte) (int, error) {
	if c.after--; c.after < 0 {
		c.cancel()
	}
	return c.r.Read(p[:min(len(p), 512)])
}

func TestFillStopsAtLimit(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	x := newExtractor(context.Background(), root, Limits{MaxUnpackedBytes: 1000, MaxFiles: 10, MaxPathLength: 100})
	if err := x.file("exact", 0, strings.NewReader(strings.Repeat("e", 600))); err != nil {
		t.Fatal(err)
	}
	if err := x.file("rest", 0, strings.NewReader(strings.Repeat("r", 400))); err != nil {
		t.Fatalf("a file ending exactly at the limit: %v", err)
	}
	err = x.file("endless", 0, zeroReader{})
	wantLimit(LimitUnpackedSize)(t, err)
	if fi, err := os.Stat(filepath.Join(dir, "endless")); err != nil || fi.Size() != 0 {
		t.Fatalf("endless: %v, %v", fi, err)
	}
	// A declared size over the limit fails before reading anything.
	y := newExtractor(context.Background(), root, Limits{MaxUnpackedBytes: 1000, MaxFiles: 10, MaxPathLength: 100})
	start := time.Now()
	wantLimit(LimitUnpackedSize)(t, y.file("huge", 1<<40, zeroReader{}))
	if time.Since(start) > time.Second {
		t.Fatal("declared size check is slow")
	}
}

func TestZipEntryPrescan(t *testing.T) {
	b := manyFilesZip(t, 50)
	r := strings.NewReader(string(b))
	for _, c := range []struct {
		max  int
		want bool
	}{{49, true}, {50, false}, {1000, false}} {
		got, err := zipHasMoreEntries(r, int64(len(b)), c.max)
		if err != nil || got != c.want {
			t.Errorf("max %d: got %v, %v; want %v", c.max, got, err, c.want)
		}
	}
	for _, junk := range []string{"", "PK\x05\x06", "PK\x03\x04" + strings.Repeat("x", 100)} {
		if got, err := zipHasMoreEntries(strings.NewReader(junk), int64(len(junk)), 0); got || err != nil {
			t.Errorf("%q: %v, %v", junk, got, err)
		}
	}
}

func TestZipEntryPrescanZip64(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a zip of 65600 entries")
	}
	const n = 65600 // more than a zip32 end record can count
	b := manyFilesZip(t, n)
	r := strings.NewReader(string(b))
	for _, c := range []struct {
		max  int
		want bool
	}{{n - 1, true}, {n, false}} {
		got, err := zipHasMoreEntries(r, int64(len(b)), c.max)
		if err != nil || got != c.want {
			t.Errorf("max %d: got %v, %v; want %v", c.max, got, err, c.want)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	v7 := rawTarHeader(t, "old.txt", '0', 0)
	copy(v7[257:], make([]byte, 8)) // no ustar magic: checksum only
	copy(v7[148:], "        ")
	var sum int
	for _, c := range v7 {
		sum += int(c)
	}
	copy(v7[148:], fmt.Sprintf("%06o\x00 ", sum))
	cases := []struct {
		head []byte
		want string
	}{
		{gz(t, nil), FormatTarGz},
		{makeZip(t, zipEnt{name: "a"}), FormatZip},
		{makeZip(t), FormatZip},
		{makeTar(t, tfile("a", "b")), FormatTar},
		{v7, FormatTar},
		{[]byte("\x89PNG\r\n\x1a\n"), ""},
		{make([]byte, 1024), ""},
		{[]byte("<html>"), ""},
	}
	for i, c := range cases {
		got, err := detectFormat(c.head)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("case %d: got %q, %v; want %q", i, got, err, c.want)
		}
	}
}
