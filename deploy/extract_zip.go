package deploy

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strings"
)

// zipFlagEncrypted is the general-purpose flag bit of an encrypted entry.
const zipFlagEncrypted = 0x1

// zip extracts the zip archive in r (size bytes).
func (x *extractor) zip(r io.ReaderAt, size int64) error {
	// zip.NewReader holds the whole central directory in memory: count
	// its records first so a huge one is refused before it is parsed.
	tooMany, err := zipHasMoreEntries(r, size, x.limits.MaxFiles)
	if err != nil {
		return readError(err)
	}
	if tooMany {
		return &LimitError{What: LimitFileCount, Limit: int64(x.limits.MaxFiles)}
	}
	zr, err := zip.NewReader(r, size)
	// With GODEBUG=zipinsecurepath=0, NewReader flags names it finds
	// unsafe but still returns the reader; zipEntry judges names itself.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return readError(err)
	}
	if len(zr.File) > x.limits.MaxFiles {
		return &LimitError{What: LimitFileCount, Limit: int64(x.limits.MaxFiles)}
	}
	for _, f := range zr.File {
		if err := x.cancelled(); err != nil {
			return err
		}
		if err := x.zipEntry(f); err != nil {
			return err
		}
	}
	return nil
}

// zipEntry extracts one entry. Only the central directory's name and
// mode are used; the data is read to EOF so the CRC is checked.
func (x *extractor) zipEntry(f *zip.File) error {
	if err := x.checkLength(f.Name); err != nil {
		return err
	}
	mode := f.Mode()
	if reason := zipTypeReason(mode); reason != "" {
		return entryError(f.Name, reason)
	}
	if f.Flags&zipFlagEncrypted != 0 {
		return entryError(f.Name, "encrypted entries are not supported")
	}
	if mode.IsDir() || strings.HasSuffix(f.Name, "/") {
		return x.dir(f.Name)
	}
	rc, err := f.Open()
	if err != nil {
		return readError(fmt.Errorf("entry %q: %w", f.Name, err))
	}
	defer rc.Close()
	return x.file(f.Name, clampSize(f.UncompressedSize64), &entryReader{r: rc, prefix: fmt.Sprintf("entry %q", f.Name)})
}

// zipTypeReason says why an entry of this mode is refused, or "" for a
// regular file or directory.
func zipTypeReason(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "symbolic links are not allowed"
	case mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		return "device files are not allowed"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipes (FIFOs) are not allowed"
	case mode&fs.ModeSocket != 0:
		return "sockets are not allowed"
	case mode&fs.ModeType&^fs.ModeDir != 0:
		return "entry type is not allowed (only files and directories)"
	}
	return ""
}

// clampSize converts a declared zip size to int64.
func clampSize(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}
