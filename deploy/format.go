package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// tarBlockSize is the size of a tar header.
const tarBlockSize = 512

// detectFormat names the archive format from its first bytes (magic
// numbers, never a file name), or returns a *FormatError.
func detectFormat(head []byte) (string, error) {
	switch {
	case len(head) == 0:
		return "", formatErrorf("the archive is empty")
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatTarGz, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip, nil
	case len(head) >= tarBlockSize && isTarHeader(head[:tarBlockSize]):
		return FormatTar, nil
	}
	return "", formatErrorf("unknown archive format (expected tar.gz, tar or zip)")
}

// isTarHeader reports whether block looks like a tar header: it carries
// the ustar magic, or (old V7 archives) a correct header checksum.
func isTarHeader(block []byte) bool {
	if bytes.HasPrefix(block[257:], []byte("ustar")) {
		return true
	}
	if block[0] == 0 {
		return false
	}
	field := strings.Trim(string(block[148:156]), " \x00")
	want, err := strconv.ParseUint(field, 8, 32)
	if err != nil {
		return false
	}
	var sum uint64
	for i, b := range block {
		if i >= 148 && i < 156 {
			b = ' '
		}
		sum += uint64(b)
	}
	return sum == want
}

// extractArchive detects the format of the archive in f (size bytes) and
// extracts it under root. It returns the format and what was extracted
// (the Files, Unpacked and Format fields of an Info); errors are
// *FormatError, *EntryError, *LimitError, or I/O and context errors.
func extractArchive(ctx context.Context, f *os.File, size int64, root *os.Root, limits Limits) (Info, error) {
	head := make([]byte, tarBlockSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return Info{}, fmt.Errorf("read archive: %w", err)
	}
	format, err := detectFormat(head[:n])
	if err != nil {
		return Info{}, err
	}
	x := newExtractor(ctx, root, limits)
	switch format {
	case FormatZip:
		// The section reader answers io.EOF, not an I/O error, for offsets a
		// malformed directory points outside the file (negative included).
		err = x.zip(&ctxReaderAt{ctx: ctx, r: io.NewSectionReader(f, 0, size)}, size)
	default:
		src := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, size)}, 64<<10)
		if format == FormatTarGz {
			err = x.tarGz(src)
		} else {
			err = x.tar(src)
		}
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Format: format, Files: x.files, Unpacked: x.unpacked}, nil
}
