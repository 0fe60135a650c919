package deploy

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
)

// Zip record signatures and sizes (APPNOTE.TXT).
const (
	zipDirHeaderSig   = 0x02014b50
	zipDirEndSig      = 0x06054b50
	zipDir64LocSig    = 0x07064b50
	zipDir64EndSig    = 0x06064b50
	zipDirHeaderLen   = 46
	zipDirEndLen      = 22
	zipDir64LocLen    = 20
	zipDir64EndLen    = 56
	zipMaxCommentScan = 65 * 1024
)

// zipHasMoreEntries reports whether the central directory of the zip in r
// holds more than limit records, without keeping them in memory. It locates
// the directory the way archive/zip does and counts the consecutive
// records from where archive/zip starts reading (both candidate starts
// when archive/zip would adjust for data prepended to the archive), so
// its count is never below the number of files zip.NewReader would load.
// When the directory cannot be located it returns false: zip.NewReader
// then fails the same way.
func zipHasMoreEntries(r io.ReaderAt, size int64, limit int) (bool, error) {
	starts, err := zipDirectoryStarts(r, size)
	if err != nil || len(starts) == 0 {
		return false, err
	}
	for _, start := range starts {
		n, err := zipCountRecords(r, start, size, limit)
		if err != nil {
			return false, err
		}
		if n > limit {
			return true, nil
		}
	}
	return false, nil
}

// zipDirectoryEnd is what the end-of-central-directory records say.
type zipDirectoryEnd struct {
	offset    int64 // of the end record itself (or of the zip64 one)
	dirSize   uint64
	dirOffset uint64
	records   uint64
}

// zipDirectoryStarts returns the offsets at which archive/zip may start
// reading central directory records, or none if it would find no
// directory end.
func zipDirectoryStarts(r io.ReaderAt, size int64) ([]int64, error) {
	end, err := zipFindDirectoryEnd(r, size)
	if err != nil || end == nil {
		return nil, err
	}
	if end.dirSize > math.MaxInt64 || end.dirOffset > math.MaxInt64 {
		return nil, nil
	}
	base := end.offset - int64(end.dirSize) - int64(end.dirOffset)
	if o := base + int64(end.dirOffset); o < 0 || o >= size {
		return nil, nil
	}
	if base > 0 && int64(end.dirOffset) < size {
		return []int64{int64(end.dirOffset), base + int64(end.dirOffset)}, nil
	}
	return []int64{base + int64(end.dirOffset)}, nil
}

// zipFindDirectoryEnd finds and reads the end-of-central-directory record
// (and its zip64 form) like archive/zip, or returns nil if there is none.
func zipFindDirectoryEnd(r io.ReaderAt, size int64) (*zipDirectoryEnd, error) {
	for _, n := range []int64{1024, zipMaxCommentScan} {
		n = min(n, size)
		buf := make([]byte, n)
		if _, err := r.ReadAt(buf, size-n); err != nil && err != io.EOF {
			return nil, err
		}
		if p := zipFindEndSignature(buf); p >= 0 {
			b := buf[p:]
			end := &zipDirectoryEnd{
				offset:    size - n + int64(p),
				records:   uint64(binary.LittleEndian.Uint16(b[10:])),
				dirSize:   uint64(binary.LittleEndian.Uint32(b[12:])),
				dirOffset: uint64(binary.LittleEndian.Uint32(b[16:])),
			}
			return zipReadDirectory64End(r, end)
		}
		if n == size {
			break
		}
	}
	return nil, nil
}

// zipFindEndSignature returns the offset in b of the last end record whose
// comment fits in b, or -1 (archive/zip's findSignatureInBlock).
func zipFindEndSignature(b []byte) int {
	for i := len(b) - zipDirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(b[i:]) == zipDirEndSig {
			n := int(binary.LittleEndian.Uint16(b[i+zipDirEndLen-2:]))
			if n+zipDirEndLen+i > len(b) {
				return -1
			}
			return i
		}
	}
	return -1
}

// zipReadDirectory64End replaces end's fields with those of the zip64 end
// record if end says there is one, like archive/zip; nil means none.
func zipReadDirectory64End(r io.ReaderAt, end *zipDirectoryEnd) (*zipDirectoryEnd, error) {
	if end.records != 0xffff && end.dirSize != 0xffff && end.dirOffset != 0xffffffff {
		return end, nil
	}
	loc := end.offset - zipDir64LocLen
	if loc < 0 {
		return end, nil
	}
	buf := make([]byte, zipDir64LocLen)
	if _, err := r.ReadAt(buf, loc); err != nil {
		return nil, nil // archive/zip fails on this; so will NewReader
	}
	if binary.LittleEndian.Uint32(buf) != zipDir64LocSig ||
		binary.LittleEndian.Uint32(buf[4:]) != 0 || binary.LittleEndian.Uint32(buf[16:]) != 1 {
		return end, nil
	}
	p := int64(binary.LittleEndian.Uint64(buf[8:]))
	buf = make([]byte, zipDir64EndLen)
	if _, err := r.ReadAt(buf, p); err != nil || binary.LittleEndian.Uint32(buf) != zipDir64EndSig {
		return nil, nil
	}
	return &zipDirectoryEnd{
		offset:    p,
		records:   binary.LittleEndian.Uint64(buf[32:]),
		dirSize:   binary.LittleEndian.Uint64(buf[40:]),
		dirOffset: binary.LittleEndian.Uint64(buf[48:]),
	}, nil
}

// zipCountRecords counts the consecutive central directory records from
// start, stopping once the count exceeds limit.
func zipCountRecords(r io.ReaderAt, start, size int64, limit int) (int, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, size-start), 64<<10)
	var hdr [zipDirHeaderLen]byte
	n := 0
	for n <= limit {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return n, ignoreEOF(err)
		}
		if binary.LittleEndian.Uint32(hdr[:]) != zipDirHeaderSig {
			return n, nil
		}
		skip := int64(binary.LittleEndian.Uint16(hdr[28:])) +
			int64(binary.LittleEndian.Uint16(hdr[30:])) +
			int64(binary.LittleEndian.Uint16(hdr[32:]))
		if _, err := br.Discard(int(skip)); err != nil {
			return n, ignoreEOF(err)
		}
		n++
	}
	return n, nil
}

// ignoreEOF returns nil for the EOF errors that end a record scan.
func ignoreEOF(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil
	}
	return err
}
