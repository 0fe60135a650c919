package deploy

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
)

// tarEnt is one entry of a tar built with archive/tar.
type tarEnt struct {
	hdr  tar.Header
	body string
}

// tfile, tdir, tlink and tspecial build common tar entries.
func tfile(name, body string) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}, body: body}
}

func tdir(name string) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}}
}

func tlink(name, target string, flag byte) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Linkname: target, Mode: 0o777, Typeflag: flag}}
}

func tspecial(name string, flag byte) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Mode: 0o644, Typeflag: flag, Devmajor: 1, Devminor: 3}}
}

// makeTar builds a tar archive of ents with archive/tar.
func makeTar(t testing.TB, ents ...tarEnt) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gz compresses b with gzip.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// rawEnt is one entry of a hand-made ustar archive: any name bytes, any
// type flag.
type rawEnt struct {
	name string
	flag byte
	body string
}

// rawTar builds a ustar archive by hand, so names archive/tar would refuse
// to write (or rewrite) can be tested.
func rawTar(t testing.TB, ents ...rawEnt) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, e := range ents {
		b.Write(rawTarHeader(t, e.name, e.flag, len(e.body)))
		b.WriteString(e.body)
		if pad := len(e.body) % 512; pad != 0 {
			b.Write(make([]byte, 512-pad))
		}
	}
	b.Write(make([]byte, 1024))
	return b.Bytes()
}

// rawTarHeader returns a 512-byte ustar header with a valid checksum.
func rawTarHeader(t testing.TB, name string, flag byte, size int) []byte {
	t.Helper()
	if len(name) > 100 {
		t.Fatalf("raw tar name too long: %d", len(name))
	}
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = flag
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	var sum int
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// paxRecord formats one PAX extended header record.
func paxRecord(key, value string) string {
	rec := " " + key + "=" + value + "\n"
	n := len(rec)
	for {
		s := fmt.Sprint(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// zipEnt is one entry of a zip built with archive/zip.
type zipEnt struct {
	name   string
	mode   fs.FileMode // 0: archive/zip's default
	body   string
	method uint16
}

// makeZip builds a zip archive of ents.
func makeZip(t testing.TB, ents ...zipEnt) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.name, Method: e.method}
		if e.mode != 0 {
			fh.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatalf("zip entry %q: %v", e.name, err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// randomString returns n deterministic pseudo-random bytes.
func randomString(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// manyFilesTarGz returns a tar.gz of n empty files.
func manyFilesTarGz(t testing.TB, n int) []byte {
	t.Helper()
	ents := make([]tarEnt, n)
	for i := range ents {
		ents[i] = tfile(fmt.Sprintf("f/%05d", i), "")
	}
	return gz(t, makeTar(t, ents...))
}

// manyFilesZip returns a zip of n empty files.
func manyFilesZip(t testing.TB, n int) []byte {
	t.Helper()
	ents := make([]zipEnt, n)
	for i := range ents {
		ents[i] = zipEnt{name: fmt.Sprintf("f/%05d", i)}
	}
	return makeZip(t, ents...)
}

// lyingZip returns a zip whose only entry declares 10 bytes but
// decompresses to 1 MiB.
func lyingZip(t testing.TB) []byte {
	t.Helper()
	var data bytes.Buffer
	fw, _ := flate.NewWriter(&data, flate.BestCompression)
	fw.Write(make([]byte, 1<<20))
	fw.Close()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: "small.txt", Method: zip.Deflate,
		CompressedSize64: uint64(data.Len()), UncompressedSize64: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data.Bytes())
	zw.Close()
	return b.Bytes()
}

// corruptZipCRC returns a zip whose stored entry's data was altered after
// its CRC was computed.
func corruptZipCRC(t testing.TB) []byte {
	t.Helper()
	body := strings.Repeat("hello, checksum! ", 64)
	b := makeZip(t, zipEnt{name: "a.txt", body: body, method: zip.Store})
	i := bytes.Index(b, []byte(body))
	b[i+100] ^= 0xff
	return b
}

// flipMiddle returns b with a few bytes in its middle inverted.
func flipMiddle(b []byte) []byte {
	b = bytes.Clone(b)
	for i := len(b)/2 - 8; i < len(b)/2+8; i += 3 {
		b[i] ^= 0xa5
	}
	return b
}

// deflateFlushed returns the raw deflate encoding of b from a fresh
// compressor, ended by a sync flush (byte aligned, not final), so that
// such pieces can be concatenated into one stream.
func deflateFlushed(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	fw, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(b)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// gzipBomb streams a tar.gz holding one file of total zero bytes. The
// compressed stream is made of one deflated 1 MiB block of zeros repeated
// (about 1 KiB each), so gigabytes cost megabytes and no compression
// time, and nothing is held in memory. Closing the returned reader stops
// the writer.
func gzipBomb(t testing.TB, name string, total int64) io.ReadCloser {
	t.Helper()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: total, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	head := deflateFlushed(t, hdr.Bytes())
	chunk := deflateFlushed(t, make([]byte, 1<<20))
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
		pw.Write(head)
		for i := int64(0); i < total>>20; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		// Final empty block, then a trailer (extraction never gets there).
		pw.Write([]byte{0x03, 0x00})
		var trailer [8]byte
		binary.LittleEndian.PutUint32(trailer[4:], uint32(total+512))
		pw.Write(trailer[:])
		pw.Close()
	}()
	return pr
}

// sparseTar returns a tar holding a PAX-format GNU sparse file.
func sparseTar(t testing.TB) []byte {
	t.Helper()
	pax := paxRecord("GNU.sparse.size", "5") + paxRecord("GNU.sparse.numblocks", "1") +
		paxRecord("GNU.sparse.map", "0,5") + paxRecord("GNU.sparse.name", "sparse.txt")
	return rawTar(t, rawEnt{name: "PaxHeaders/sparse", flag: 'x', body: pax}, rawEnt{name: "sparse.txt", flag: '0', body: "hello"})
}
