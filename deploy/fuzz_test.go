package deploy

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzLimits keep fuzzed archives small.
var fuzzLimits = Limits{MaxArchiveBytes: 1 << 20, MaxUnpackedBytes: 1 << 20, MaxFiles: 64, MaxPathLength: 128}

// fuzzSeeds returns small valid and invalid archives.
func fuzzSeeds(t testing.TB) [][]byte {
	small := makeTar(t, tdir("./"), tfile("./index.html", "hi"), tfile("a/b/c.txt", "c"), tdir("a/"))
	return [][]byte{
		small,
		gz(t, small),
		makeZip(t, zipEnt{name: "index.html", body: "hi"}, zipEnt{name: "d/"}, zipEnt{name: "d/e.txt", body: "e", method: 8}),
		makeZip(t),
		gz(t, makeTar(t)),
		makeTar(t, tfile("../evil", "x")),
		makeTar(t, tlink("link", "/tmp", tar.TypeSymlink), tfile("link/evil", "x")),
		makeTar(t, tlink("hl", "index.html", tar.TypeLink)),
		makeTar(t, tfile("a", "1"), tfile("a", "2")),
		makeZip(t, zipEnt{name: "/abs", body: "x"}, zipEnt{name: `a\b`}),
		makeZip(t, zipEnt{name: "link", mode: fs.ModeSymlink | 0o777, body: "/etc"}),
		rawTar(t, rawEnt{name: "bad\xff", flag: '0', body: "x"}),
		sparseTar(t),
		corruptZipCRC(t),
		flipMiddle(gz(t, small)),
		small[:700],
		manyFilesTarGz(t, 70),
		[]byte("\x89PNG\r\n\x1a\n"),
		nil,
	}
}

// FuzzIngest feeds arbitrary bytes to Ingest: it must not panic, must
// return nil or a typed archive error, must leave the store as it was on
// failure, and must never write outside the store.
func FuzzIngest(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	// One environment per fuzzing process, returned to its pristine state
	// after every input: creating one per input would dominate the time.
	e := newTestEnv(f, fuzzLimits)
	e.store.noSync = true
	pristine := e.state(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := e.ingestBytes(t, data)
		if err != nil {
			if !isTypedError(err) {
				t.Fatalf("untyped error: %v", err)
			}
			assertSameState(t, pristine, e.state(t))
			return
		}
		checkOnlyBundleAdded(t, e, pristine, info.SHA256)
		checkLayout(t, e, info.SHA256)
		checkExtractedTree(t, e.store.Root(info.SHA256), info)
		if err := e.store.Remove(info.SHA256); err != nil {
			t.Fatal(err)
		}
		assertSameState(t, pristine, e.state(t))
	})
}

// checkOnlyBundleAdded fails if anything changed in the environment other
// than bundle sha's directory, archive and info appearing.
func checkOnlyBundleAdded(t testing.TB, e *testEnv, before map[string]string, sha string) {
	t.Helper()
	after := e.state(t)
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("%s changed: %q -> %q", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !strings.HasPrefix(k, filepath.Join("store", sha)) {
			t.Fatalf("unexpected new path %s", k)
		}
	}
}

// checkExtractedTree fails unless the tree under root holds only
// directories (0755) and regular files (0644) matching info.
func checkExtractedTree(t testing.TB, root string, info Info) {
	t.Helper()
	files, entries := 0, 0
	var bytes int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir() && fi.Mode().Perm() == 0o755 && fi.Mode()&^fs.ModePerm == fs.ModeDir:
		case fi.Mode().IsRegular() && fi.Mode() == 0o644:
			files++
			bytes += fi.Size()
		default:
			t.Fatalf("%s: mode %v", p, fi.Mode())
		}
		if p != root {
			entries++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != info.Files || bytes != info.Unpacked || entries > fuzzLimits.MaxFiles {
		t.Fatalf("tree has %d files, %d bytes, %d entries; Info %+v", files, bytes, entries, info)
	}
}
