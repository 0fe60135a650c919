package deploy

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxTrailingBytes is how much decompressed data may follow the end of a
// tar archive inside a gzip stream (tar pads to 10 KiB records).
const maxTrailingBytes = 1 << 20

// tarGz extracts a gzip-compressed tar from r, then reads the gzip stream
// to its end so a corrupt trailer (CRC, size) is detected.
func (x *extractor) tarGz(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return readError(err)
	}
	defer zr.Close()
	if err := x.tar(zr); err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxTrailingBytes+1))
	if err != nil {
		return readError(err)
	}
	if n > maxTrailingBytes {
		return formatErrorf("more than %d bytes follow the end of the tar archive", maxTrailingBytes)
	}
	return nil
}

// tar extracts the tar archive read from r.
func (x *extractor) tar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := x.cancelled(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		// With GODEBUG=tarinsecurepath=0, Next flags names it finds unsafe
		// but still returns the header; tarEntry judges names itself.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return readError(err)
		}
		if err := x.tarEntry(hdr, tr); err != nil {
			return err
		}
	}
}

// tarEntry extracts one entry, reading its data from tr.
func (x *extractor) tarEntry(hdr *tar.Header, tr *tar.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX global header (git archive writes one): metadata only
	}
	if err := x.checkLength(hdr.Name); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, 0: // archive/tar reports the old '\x00' as TypeReg or TypeDir
		if isSparse(hdr) {
			return entryError(hdr.Name, "sparse files are not allowed")
		}
		return x.file(hdr.Name, hdr.Size, &entryReader{r: tr, prefix: fmt.Sprintf("entry %q", hdr.Name)})
	case tar.TypeDir:
		return x.dir(hdr.Name)
	}
	return entryError(hdr.Name, tarTypeReason(hdr.Typeflag))
}

// isSparse reports whether hdr describes a PAX-format GNU sparse file.
// (The old GNU sparse format has its own type flag.)
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// tarTypeReason says why a tar entry type other than file or directory
// is refused.
func tarTypeReason(flag byte) string {
	switch flag {
	case tar.TypeSymlink:
		return "symbolic links are not allowed"
	case tar.TypeLink:
		return "hard links are not allowed"
	case tar.TypeChar, tar.TypeBlock:
		return "device files are not allowed"
	case tar.TypeFifo:
		return "named pipes (FIFOs) are not allowed"
	case tar.TypeGNUSparse:
		return "sparse files are not allowed"
	}
	return fmt.Sprintf("entry type %q is not allowed (only files and directories)", flag)
}
