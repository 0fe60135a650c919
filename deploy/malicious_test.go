package deploy

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// testLimits are the limits of the refusal tests unless a case sets its own.
var testLimits = Limits{MaxArchiveBytes: 64 << 20, MaxUnpackedBytes: 8 << 20, MaxFiles: 1000, MaxPathLength: 1024}

// refusal is an archive Ingest must refuse without leaving anything behind.
type refusal struct {
	name    string
	limits  Limits // zero: testLimits
	archive func(t testing.TB, e *testEnv) io.Reader
	expect  string // expected SHA-256 passed to Ingest
	check   errCheck
	within  time.Duration // if set, Ingest must return within it
}

// fixed returns an archive function for fixed bytes.
func fixed(build func(t testing.TB) []byte) func(testing.TB, *testEnv) io.Reader {
	return func(t testing.TB, _ *testEnv) io.Reader { return bytes.NewReader(build(t)) }
}

// tarOf, tgzOf and zipOf are archive functions for entries.
func tarOf(ents ...tarEnt) func(testing.TB, *testEnv) io.Reader {
	return fixed(func(t testing.TB) []byte { return makeTar(t, ents...) })
}

func tgzOf(ents ...tarEnt) func(testing.TB, *testEnv) io.Reader {
	return fixed(func(t testing.TB) []byte { return gz(t, makeTar(t, ents...)) })
}

func rawTarOf(ents ...rawEnt) func(testing.TB, *testEnv) io.Reader {
	return fixed(func(t testing.TB) []byte { return rawTar(t, ents...) })
}

func zipOf(ents ...zipEnt) func(testing.TB, *testEnv) io.Reader {
	return fixed(func(t testing.TB) []byte { return makeZip(t, ents...) })
}

// escapeRefusals: names that try to leave the bundle root.
func escapeRefusals() []refusal {
	return []refusal{
		{name: "tar dotdot escape", archive: tgzOf(tfile("../sentinel/evil", "x")), check: wantEntry("../sentinel/evil", "escapes")},
		{name: "zip dotdot escape", archive: zipOf(zipEnt{name: "../sentinel/evil", body: "x"}), check: wantEntry("../sentinel/evil", "escapes")},
		{name: "tar inner dotdot escape", archive: tgzOf(tfile("a/../../etc/cron.d/x", "x")), check: wantEntry("a/../../etc/cron.d/x", "escapes")},
		{name: "zip inner dotdot escape", archive: zipOf(zipEnt{name: "a/../../etc/cron.d/x"}), check: wantEntry("a/../../etc/cron.d/x", "escapes")},
		{name: "tar dotdot inside root", archive: tarOf(tfile("a/../b", "x")), check: wantEntry("a/../b", `".."`)},
		{name: "tar absolute", archive: tgzOf(tfile("/etc/passwd", "x")), check: wantEntry("/etc/passwd", "absolute path")},
		{name: "tar absolute into sentinel", archive: func(t testing.TB, e *testEnv) io.Reader {
			return bytes.NewReader(makeTar(t, tfile(e.sentinel+"/evil", "x")))
		}, check: wantReason("absolute path")},
		{name: "zip absolute", archive: zipOf(zipEnt{name: "/etc/passwd", body: "x"}), check: wantEntry("/etc/passwd", "absolute path")},
		{name: "zip drive letter", archive: zipOf(zipEnt{name: "C:/Windows/evil"}), check: wantEntry("C:/Windows/evil", "absolute path")},
		{name: "zip backslash escape", archive: zipOf(zipEnt{name: `..\..\evil.txt`}), check: wantEntry(`..\..\evil.txt`, "backslash")},
		{name: "tar backslash", archive: rawTarOf(rawEnt{name: `a\b`, flag: '0'}), check: wantEntry(`a\b`, "backslash")},
		{name: "tar double slash", archive: tarOf(tfile("a//b", "x")), check: wantEntry("a//b", "not clean")},
		{name: "tar dot element", archive: tarOf(tfile("a/./b", "x")), check: wantEntry("a/./b", "not clean")},
		{name: "tar double dot-slash", archive: tarOf(tfile("././b", "x")), check: wantEntry("././b", "not clean")},
	}
}

// wantReason wants an *EntryError with reason, whatever the entry's name.
func wantReason(reason string) errCheck {
	return func(t testing.TB, err error) {
		t.Helper()
		var ee *EntryError
		if !errors.As(err, &ee) || !strings.Contains(ee.Reason, reason) {
			t.Fatalf("got %T %v, want *EntryError with reason %q", err, err, reason)
		}
	}
}

// typeRefusals: entries other than files and directories.
func typeRefusals() []refusal {
	return []refusal{
		{name: "tar symlink out", archive: func(t testing.TB, e *testEnv) io.Reader {
			return bytes.NewReader(gz(t, makeTar(t, tlink("link", e.sentinel, tar.TypeSymlink))))
		}, check: wantEntry("link", "symbolic links are not allowed")},
		{name: "tar symlink then write through it", archive: func(t testing.TB, e *testEnv) io.Reader {
			return bytes.NewReader(makeTar(t, tlink("link", e.sentinel+"/sub", tar.TypeSymlink), tfile("link/evil", "x")))
		}, check: wantEntry("link", "symbolic links are not allowed")},
		{name: "tar symlink to tmp then file", archive: tarOf(tlink("link", "/tmp/x", tar.TypeSymlink), tfile("link/evil", "x")),
			check: wantEntry("link", "symbolic links are not allowed")},
		{name: "zip symlink", archive: zipOf(zipEnt{name: "link", mode: fs.ModeSymlink | 0o777, body: "/etc/passwd"}, zipEnt{name: "link/evil", body: "x"}),
			check: wantEntry("link", "symbolic links are not allowed")},
		{name: "tar hard link", archive: tarOf(tlink("hl", "../sentinel/sub/keep.txt", tar.TypeLink)), check: wantEntry("hl", "hard links are not allowed")},
		{name: "tar char device", archive: tarOf(tspecial("null", tar.TypeChar)), check: wantEntry("null", "device files are not allowed")},
		{name: "tar block device", archive: tarOf(tspecial("sda", tar.TypeBlock)), check: wantEntry("sda", "device files are not allowed")},
		{name: "zip char device", archive: zipOf(zipEnt{name: "null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}), check: wantEntry("null", "device files are not allowed")},
		{name: "tar fifo", archive: tarOf(tspecial("fifo", tar.TypeFifo)), check: wantEntry("fifo", "named pipes")},
		{name: "zip fifo", archive: zipOf(zipEnt{name: "fifo", mode: fs.ModeNamedPipe | 0o644}), check: wantEntry("fifo", "named pipes")},
		{name: "zip socket", archive: zipOf(zipEnt{name: "sock", mode: fs.ModeSocket | 0o644}), check: wantEntry("sock", "sockets")},
		{name: "tar contiguous file type", archive: rawTarOf(rawEnt{name: "cont", flag: '7', body: "x"}), check: wantEntry("cont", "entry type")},
		{name: "tar GNU sparse (PAX)", archive: fixed(sparseTar), check: wantEntry("sparse.txt", "sparse files are not allowed")},
		{name: "zip encrypted", archive: fixed(func(t testing.TB) []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: "secret.txt", Flags: 0x1})
			w.Write([]byte("not really encrypted"))
			zw.Close()
			return b.Bytes()
		}), check: wantEntry("secret.txt", "encrypted")},
	}
}

// nameRefusals: duplicates and malformed names.
func nameRefusals() []refusal {
	long := strings.Repeat("a/", 60) + "f"
	return []refusal{
		{name: "tar duplicate file", archive: tgzOf(tfile("a.txt", "1"), tfile("a.txt", "2")), check: wantEntry("a.txt", "duplicate entry")},
		{name: "tar duplicate via ./", archive: tarOf(tfile("./a.txt", "1"), tfile("a.txt", "2")), check: wantEntry("a.txt", "duplicate entry")},
		{name: "zip duplicate file", archive: zipOf(zipEnt{name: "a.txt"}, zipEnt{name: "a.txt"}), check: wantEntry("a.txt", "duplicate entry")},
		{name: "tar file then dir", archive: tarOf(tfile("a", "1"), tdir("a/")), check: wantEntry("a/", "duplicate entry")},
		{name: "tar dir then file", archive: tarOf(tdir("a/"), tfile("a", "1")), check: wantEntry("a", "duplicate entry")},
		{name: "tar implied dir then file", archive: tarOf(tfile("a/b", "1"), tfile("a", "1")), check: wantEntry("a", "duplicate entry")},
		{name: "tar dir twice", archive: tarOf(tdir("d/"), tdir("d/")), check: wantEntry("d/", "duplicate entry")},
		{name: "zip file then dir", archive: zipOf(zipEnt{name: "a"}, zipEnt{name: "a/"}), check: wantEntry("a/", "duplicate entry")},
		{name: "tar file then child", archive: tarOf(tfile("a", "1"), tfile("a/b", "1")), check: wantEntry("a/b", "is a file")},
		{name: "tar non-UTF-8 name", archive: rawTarOf(rawEnt{name: "bad\xff.txt", flag: '0'}), check: wantEntry("bad\xff.txt", "not valid UTF-8")},
		{name: "zip non-UTF-8 name", archive: zipOf(zipEnt{name: "bad\xfe\xff.txt"}), check: wantEntry("bad\xfe\xff.txt", "not valid UTF-8")},
		{name: "zip NUL in name", archive: zipOf(zipEnt{name: "a\x00b.txt"}), check: wantEntry("a\x00b.txt", "NUL")},
		{name: "tar newline in name", archive: rawTarOf(rawEnt{name: "a\nb.txt", flag: '0'}), check: wantEntry("a\nb.txt", "control character")},
		{name: "zip escape in name", archive: zipOf(zipEnt{name: "a\x1b[31m.txt"}), check: wantEntry("a\x1b[31m.txt", "control character")},
		{name: "tar over-long path", limits: Limits{MaxPathLength: 100}, archive: tgzOf(tfile(long, "x")), check: wantLimit(LimitPathLength)},
		{name: "zip over-long path", limits: Limits{MaxPathLength: 100}, archive: zipOf(zipEnt{name: long}), check: wantLimit(LimitPathLength)},
		{name: "over-long symlink name is a limit error", limits: Limits{MaxPathLength: 100}, archive: tarOf(tlink(long, "x", tar.TypeSymlink)), check: wantLimit(LimitPathLength)},
		{name: "over-long path element", archive: tarOf(tfile(strings.Repeat("e", 300), "x")), check: wantEntry(strings.Repeat("e", 300), "longer than 255")},
		{name: "tar empty file name", archive: rawTarOf(rawEnt{name: "./", flag: '0'}), check: wantEntry("./", "empty name")},
	}
}

// sizeRefusals: limits, malformed archives and hashes.
func sizeRefusals() []refusal {
	return []refusal{
		{name: "gzip bomb 4 GiB", archive: func(t testing.TB, _ *testEnv) io.Reader { return gzipBomb(t, "zeros", 4<<30) },
			check: wantLimit(LimitUnpackedSize), within: 15 * time.Second},
		{name: "zip of many 1 MiB files", archive: fixed(func(t testing.TB) []byte {
			ents := make([]zipEnt, 10)
			for i := range ents {
				ents[i] = zipEnt{name: strings.Repeat("z", i+1), body: string(make([]byte, 1<<20)), method: zip.Deflate}
			}
			return makeZip(t, ents...)
		}), check: wantLimit(LimitUnpackedSize)},
		{name: "tar.gz of 2000 empty files", archive: fixed(func(t testing.TB) []byte { return manyFilesTarGz(t, 2000) }), check: wantLimit(LimitFileCount)},
		{name: "zip of 2000 empty files", archive: fixed(func(t testing.TB) []byte { return manyFilesZip(t, 2000) }), check: wantLimit(LimitFileCount)},
		{name: "implied directories count", limits: Limits{MaxFiles: 10}, archive: tarOf(tfile("a/b/c/d/e/f/g/h/i/j/k", "x")), check: wantLimit(LimitFileCount)},
		{name: "corrupt gzip stream", archive: fixed(func(t testing.TB) []byte {
			return flipMiddle(gz(t, makeTar(t, tfile("random.bin", randomString(1, 64<<10)))))
		}), check: wantFormat()},
		{name: "gzip trailer CRC", archive: fixed(func(t testing.TB) []byte {
			b := gz(t, makeTar(t, tfile("a.txt", "hello")))
			b[len(b)-8] ^= 0xff
			return b
		}), check: wantFormat()},
		{name: "gzip trailing garbage", archive: fixed(func(t testing.TB) []byte {
			return append(gz(t, makeTar(t, tfile("a.txt", "hello"))), "garbage"...)
		}), check: wantFormat()},
		{name: "gzip of not a tar", archive: fixed(func(t testing.TB) []byte { return gz(t, []byte(randomString(2, 4096))) }), check: wantFormat()},
		{name: "truncated tar", archive: fixed(func(t testing.TB) []byte {
			return makeTar(t, tfile("a.txt", "hello"), tfile("random.bin", randomString(3, 10000)))[:3000]
		}), check: wantFormat()},
		{name: "truncated tar.gz", archive: fixed(func(t testing.TB) []byte {
			b := gz(t, makeTar(t, tfile("random.bin", randomString(4, 10000))))
			return b[:len(b)/2]
		}), check: wantFormat()},
		{name: "zip bad CRC", archive: fixed(corruptZipCRC), check: wantFormat()},
		{name: "zip lying about its size", archive: fixed(lyingZip), check: wantFormat()},
		{name: "truncated zip", archive: fixed(func(t testing.TB) []byte {
			b := makeZip(t, zipEnt{name: "a.txt", body: randomString(5, 5000)})
			return b[:len(b)-30]
		}), check: wantFormat()},
		{name: "archive over MaxArchiveBytes", limits: Limits{MaxArchiveBytes: 4096}, archive: tgzOf(tfile("random.bin", randomString(6, 20000))),
			check: wantLimit(LimitArchiveSize)},
		{name: "unknown format (PNG)", archive: fixed(func(testing.TB) []byte {
			return append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 600)...)
		}), check: wantFormat()},
		{name: "empty input", archive: fixed(func(testing.TB) []byte { return nil }), check: wantFormat()},
		{name: "hash mismatch", archive: tgzOf(tfile("a.txt", "hello")), expect: sha256Hex([]byte("something else")), check: wantMismatch()},
	}
}

// TestIngestRefuses feeds malicious and malformed archives to Ingest and
// checks the error, that the store is exactly as before and that nothing
// outside it changed.
func TestIngestRefuses(t *testing.T) {
	var cases []refusal
	for _, group := range [][]refusal{escapeRefusals(), typeRefusals(), nameRefusals(), sizeRefusals()} {
		cases = append(cases, group...)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limits := c.limits
			if limits == (Limits{}) {
				limits = testLimits
			}
			e := newTestEnv(t, limits)
			before := e.state(t)
			r := c.archive(t, e)
			if rc, ok := r.(io.Closer); ok {
				defer rc.Close()
			}
			start := time.Now()
			_, err := e.store.Ingest(context.Background(), r, c.expect)
			took := time.Since(start)
			t.Logf("Ingest: %v (%v)", err, took)
			c.check(t, err)
			if c.within > 0 && took > c.within {
				t.Errorf("Ingest took %v, want under %v", took, c.within)
			}
			assertSameState(t, before, e.state(t))
			if shas, _ := e.store.List(); len(shas) != 0 {
				t.Fatalf("List = %v after a refused ingest", shas)
			}
		})
	}
}

// TestIngestReadsAtMostLimitPlusOne checks that an oversized upload is not
// read past MaxArchiveBytes+1 bytes.
func TestIngestReadsAtMostLimitPlusOne(t *testing.T) {
	e := newTestEnv(t, Limits{MaxArchiveBytes: 1000})
	cr := &countingReader{r: io.LimitReader(zeroReader{}, 1<<30)}
	_, err := e.store.Ingest(context.Background(), cr, "")
	wantLimit(LimitArchiveSize)(t, err)
	if cr.n > 1001 {
		t.Fatalf("read %d bytes, want at most 1001", cr.n)
	}
}

// zeroReader reads zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
