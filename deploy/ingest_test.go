package deploy

import (
	"archive/tar"
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
	"sync"
	"testing"
)

// goodTree is the tree every good archive extracts to: path -> contents,
// "/" for a directory.
var goodTree = map[string]string{
	"index.html":        "<h1>hello</h1>",
	"css":               "/",
	"css/site.css":      "body { color: red }",
	"js":                "/",
	"js/app":            "/",
	"js/app/main.js":    "main()",
	"bin":               "/",
	"bin/setuid":        "#!/bin/sh",
	"empty.txt":         "",
	"deep":              "/",
	"deep/a":            "/",
	"deep/a/b":          "/",
	"deep/a/b/c.txt":    "c",
	"ünïcode ✓.html":    "unicode",
	"long":              "/",
	"long/" + longName:  "long",
	"random/random.bin": randomString(7, 100000),
	"random":            "/",
}

// longName is a file name archive/tar must store in a PAX record.
var longName = strings.Repeat("n", 150) + ".html"

// goodTarEntries are goodTree's entries in tar form, with "./" prefixes,
// odd modes, a PAX global header, directories implied before they are
// listed, and the root listed as ".".
func goodTarEntries() []tarEnt {
	mode := func(e tarEnt, m int64) tarEnt { e.hdr.Mode = m; return e }
	return []tarEnt{
		{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "0123abcd"}}},
		tdir("./"),
		mode(tfile("./index.html", goodTree["index.html"]), 0o777),
		mode(tdir("./css/"), 0o700),
		mode(tfile("./css/site.css", goodTree["css/site.css"]), 0o600),
		tfile("./js/app/main.js", goodTree["js/app/main.js"]),
		tdir("./js/"),
		tdir("js/app"),
		mode(tfile("bin/setuid", goodTree["bin/setuid"]), 0o4755),
		tfile("empty.txt", ""),
		tfile("deep/a/b/c.txt", "c"),
		tfile("ünïcode ✓.html", "unicode"),
		tfile("long/"+longName, "long"),
		tfile("random/random.bin", goodTree["random/random.bin"]),
	}
}

// goodZipEntries are goodTree's entries in zip form.
func goodZipEntries() []zipEnt {
	return []zipEnt{
		{name: "index.html", body: goodTree["index.html"], mode: 0o777},
		{name: "css/", mode: fs.ModeDir | 0o700},
		{name: "css/site.css", body: goodTree["css/site.css"], mode: 0o600},
		{name: "./js/app/main.js", body: goodTree["js/app/main.js"]},
		{name: "js/"},
		{name: "bin/setuid", body: goodTree["bin/setuid"], mode: fs.ModeSetuid | 0o755},
		{name: "empty.txt"},
		{name: "deep/a/b/c.txt", body: "c"},
		{name: "ünïcode ✓.html", body: "unicode"},
		{name: "long/" + longName, body: "long"},
		{name: "random/random.bin", body: goodTree["random/random.bin"], method: 8},
	}
}

// goodArchives returns the good tree as tar.gz, tar and zip.
func goodArchives(t testing.TB) map[string][]byte {
	tarBytes := makeTar(t, goodTarEntries()...)
	return map[string][]byte{
		FormatTarGz: gz(t, tarBytes),
		FormatTar:   tarBytes,
		FormatZip:   makeZip(t, goodZipEntries()...),
	}
}

// wantTree returns the snapshot goodTree must produce.
func wantTree() map[string]string {
	out := map[string]string{".": "drwxr-xr-x"}
	for p, body := range goodTree {
		if body == "/" {
			out[p] = "drwxr-xr-x"
			continue
		}
		sum := sha256.Sum256([]byte(body))
		out[p] = fmt.Sprintf("-rw-r--r-- %d %x", len(body), sum[:8])
	}
	return out
}

// wantInfo returns the Info of the good tree in archive b.
func wantInfo(format string, b []byte) Info {
	info := Info{SHA256: sha256Hex(b), Size: int64(len(b)), Format: format}
	for _, body := range goodTree {
		if body != "/" {
			info.Files++
			info.Unpacked += int64(len(body))
		}
	}
	return info
}

func TestIngestGood(t *testing.T) {
	for format, b := range goodArchives(t) {
		t.Run(format, func(t *testing.T) {
			e := newTestEnv(t, Limits{})
			info, err := e.store.Ingest(context.Background(), bytes.NewReader(b), strings.ToUpper(sha256Hex(b)))
			if err != nil {
				t.Fatal(err)
			}
			checkStored(t, e, info, wantInfo(format, b), b)
		})
	}
}

// checkStored checks a committed bundle: its Info, tree, archive, listing
// and the store's layout.
func checkStored(t testing.TB, e *testEnv, got, want Info, archive []byte) {
	t.Helper()
	if got != want {
		t.Fatalf("Info = %+v, want %+v", got, want)
	}
	sha := want.SHA256
	if root := e.store.Root(sha); root != filepath.Join(e.dir, sha) || !filepath.IsAbs(root) || !e.store.Has(sha) {
		t.Fatalf("Root = %q, Has = %v", root, e.store.Has(sha))
	}
	if tree := snapshot(t, e.store.Root(sha)); !maps.Equal(tree, wantTree()) {
		assertSameState(t, wantTree(), tree)
	}
	if stored, err := e.store.Info(sha); err != nil || stored != want {
		t.Fatalf("Info(%s) = %+v, %v", sha, stored, err)
	}
	rc, size, err := e.store.Open(sha)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil || n != size || size != int64(len(archive)) || hex.EncodeToString(h.Sum(nil)) != sha {
		t.Fatalf("Open: %d bytes (size %d), err %v, hash %x; want %d bytes of %s", n, size, err, h.Sum(nil), len(archive), sha)
	}
	if shas, err := e.store.List(); err != nil || !slices.Equal(shas, []string{sha}) {
		t.Fatalf("List = %v, %v", shas, err)
	}
	checkLayout(t, e, sha)
}

// checkLayout checks that the store directory holds exactly the given
// bundles and an empty tmp.
func checkLayout(t testing.TB, e *testEnv, shas ...string) {
	t.Helper()
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range entries {
		got = append(got, d.Name())
	}
	want := []string{tmpDirName}
	for _, sha := range shas {
		want = append(want, sha, sha+archiveSuffix, sha+infoSuffix)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("store holds %v, want %v", got, want)
	}
	if tmp, _ := os.ReadDir(filepath.Join(e.dir, tmpDirName)); len(tmp) != 0 {
		t.Fatalf("tmp holds %v", tmp)
	}
}

func TestIngestIdempotent(t *testing.T) {
	b := goodArchives(t)[FormatTarGz]
	e := newTestEnv(t, Limits{})
	first, err := e.ingestBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	before := e.state(t)
	cr := &countingReader{r: bytes.NewReader(b)}
	second, err := e.store.Ingest(context.Background(), cr, first.SHA256)
	if err != nil || second != first {
		t.Fatalf("second Ingest = %+v, %v; want %+v", second, err, first)
	}
	if cr.n != int64(len(b)) {
		t.Fatalf("second Ingest read %d of %d bytes", cr.n, len(b))
	}
	assertSameState(t, before, e.state(t))
	// A mismatch is still reported for a present bundle.
	_, err = e.store.Ingest(context.Background(), bytes.NewReader(b), sha256Hex(nil))
	wantMismatch()(t, err)
}

func TestIngestConcurrent(t *testing.T) {
	archives := goodArchives(t)
	e := newTestEnv(t, Limits{})
	var wg sync.WaitGroup
	infos := make([]Info, 12)
	errs := make([]error, 12)
	formats := []string{FormatTarGz, FormatTar, FormatZip}
	for i := range infos {
		wg.Go(func() {
			infos[i], errs[i] = e.ingestBytes(t, archives[formats[i%3]])
		})
	}
	wg.Wait()
	for i := range infos {
		f := formats[i%3]
		if errs[i] != nil || infos[i] != wantInfo(f, archives[f]) {
			t.Fatalf("Ingest %d (%s) = %+v, %v", i, f, infos[i], errs[i])
		}
	}
	var shas []string
	for _, b := range archives {
		shas = append(shas, sha256Hex(b))
	}
	checkLayout(t, e, shas...)
}

func TestIngestEmptyArchives(t *testing.T) {
	cases := map[string][]byte{
		FormatZip:   makeZip(t),
		FormatTarGz: gz(t, makeTar(t)),
	}
	for format, b := range cases {
		e := newTestEnv(t, Limits{})
		info, err := e.ingestBytes(t, b)
		if err != nil || info.Format != format || info.Files != 0 || info.Unpacked != 0 {
			t.Fatalf("%s: %+v, %v", format, info, err)
		}
	}
}

func TestRemove(t *testing.T) {
	e := newTestEnv(t, Limits{})
	empty := e.state(t)
	info, err := e.ingestBytes(t, goodArchives(t)[FormatZip])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Remove(info.SHA256); err != nil {
		t.Fatal(err)
	}
	if e.store.Has(info.SHA256) {
		t.Fatal("Has after Remove")
	}
	if _, err := e.store.Info(info.SHA256); !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Info after Remove: %v", err)
	}
	if _, _, err := e.store.Open(info.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Remove: %v", err)
	}
	if shas, err := e.store.List(); err != nil || len(shas) != 0 {
		t.Fatalf("List after Remove = %v, %v", shas, err)
	}
	assertSameState(t, empty, e.state(t))
	if err := e.store.Remove(info.SHA256); err != nil {
		t.Fatalf("removing an absent bundle: %v", err)
	}
	if err := e.store.Remove("../x"); err == nil {
		t.Fatal("Remove accepted a malformed hash")
	}
}

func TestHashValidation(t *testing.T) {
	e := newTestEnv(t, Limits{})
	valid := sha256Hex([]byte("x"))
	for _, sha := range []string{"", "../x", strings.ToUpper(valid), valid[:63], valid + "0", strings.Repeat("g", 64)} {
		if e.store.Root(sha) != "" || e.store.Has(sha) {
			t.Errorf("Root(%q) = %q, Has = %v", sha, e.store.Root(sha), e.store.Has(sha))
		}
		if _, err := e.store.Info(sha); err == nil {
			t.Errorf("Info(%q) succeeded", sha)
		}
	}
	if e.store.Has(valid) {
		t.Fatal("Has of an absent bundle")
	}
	if _, err := e.store.Ingest(context.Background(), strings.NewReader("x"), "not-a-hash"); err == nil || isTypedError(err) {
		t.Fatalf("Ingest with a malformed expected hash: %v", err)
	}
}
