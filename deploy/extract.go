package deploy

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
)

// Archive formats, as reported in Info.Format.
const (
	FormatTarGz = "tar.gz"
	FormatTar   = "tar"
	FormatZip   = "zip"
)

// copyBufferSize is the buffer through which file data is copied.
const copyBufferSize = 256 << 10

// nodeKind is what the extraction created at a path.
type nodeKind uint8

const (
	kindFile       nodeKind = iota + 1
	kindImpliedDir          // created as the parent of an entry
	kindDir                 // listed in the archive
)

// extractor writes the entries of one archive under root, enforcing the
// limits and refusing duplicates. It only ever creates directories and
// new regular files, through root, so no write can leave the staging
// directory.
type extractor struct {
	ctx      context.Context
	root     *os.Root
	limits   Limits
	nodes    map[string]nodeKind
	created  int   // files and directories created
	files    int   // regular files created
	unpacked int64 // bytes written
	buf      []byte
}

// newExtractor returns an extractor writing under root.
func newExtractor(ctx context.Context, root *os.Root, limits Limits) *extractor {
	return &extractor{
		ctx:    ctx,
		root:   root,
		limits: limits,
		nodes:  make(map[string]nodeKind),
		buf:    make([]byte, copyBufferSize),
	}
}

// checkLength refuses a raw entry name longer than MaxPathLength, before
// anything else is said about the entry.
func (x *extractor) checkLength(raw string) error {
	if len(raw) > x.limits.MaxPathLength {
		return &LimitError{What: LimitPathLength, Limit: int64(x.limits.MaxPathLength)}
	}
	return nil
}

// cancelled returns the context's error, wrapped, once it is done.
func (x *extractor) cancelled() error {
	if err := x.ctx.Err(); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// dir creates the directory entry raw (and its parents). A directory
// already created as a parent is fine; one listed twice, or a path already
// used by a file, is a duplicate.
func (x *extractor) dir(raw string) error {
	name, skip, err := cleanEntryName(raw, true, x.limits.MaxPathLength)
	if err != nil || skip {
		return err
	}
	switch x.nodes[name] {
	case kindImpliedDir:
		x.nodes[name] = kindDir
		return nil
	case kindDir, kindFile:
		return entryError(raw, "duplicate entry")
	}
	if err := x.parents(raw, name); err != nil {
		return err
	}
	if err := x.mkdir(name); err != nil {
		return err
	}
	x.nodes[name] = kindDir
	return nil
}

// parents creates the missing parent directories of name.
func (x *extractor) parents(raw, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		switch x.nodes[p] {
		case kindDir, kindImpliedDir:
			continue
		case kindFile:
			return entryError(raw, fmt.Sprintf("parent %q is a file", p))
		}
		if err := x.mkdir(p); err != nil {
			return err
		}
		x.nodes[p] = kindImpliedDir
	}
	return nil
}

// count counts one more created file or directory against MaxFiles.
func (x *extractor) count() error {
	if x.created >= x.limits.MaxFiles {
		return &LimitError{What: LimitFileCount, Limit: int64(x.limits.MaxFiles)}
	}
	x.created++
	return nil
}

// mkdir creates directory name with mode 0755, whatever the umask.
func (x *extractor) mkdir(name string) error {
	if err := x.count(); err != nil {
		return err
	}
	if err := x.root.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("extract: create directory: %w", err)
	}
	if err := x.root.Chmod(name, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// file creates the regular file raw with the contents of r, which it
// reads to EOF (so trailing checksums are verified). declared is the size
// the archive claims, used only to fail early; the bytes actually read
// are what count against MaxUnpackedBytes.
func (x *extractor) file(raw string, declared int64, r io.Reader) error {
	name, _, err := cleanEntryName(raw, false, x.limits.MaxPathLength)
	if err != nil {
		return err
	}
	if _, ok := x.nodes[name]; ok {
		return entryError(raw, "duplicate entry")
	}
	if err := x.parents(raw, name); err != nil {
		return err
	}
	if declared > x.limits.MaxUnpackedBytes-x.unpacked {
		return &LimitError{What: LimitUnpackedSize, Limit: x.limits.MaxUnpackedBytes}
	}
	if err := x.count(); err != nil {
		return err
	}
	x.nodes[name] = kindFile
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("extract: create file: %w", err)
	}
	err = x.fill(f, r)
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("extract: close %s: %w", name, cerr)
	}
	if err != nil {
		return err
	}
	x.files++
	return nil
}

// fill sets f's mode to 0644 and copies r into it, stopping with a
// *LimitError before writing a byte past MaxUnpackedBytes.
func (x *extractor) fill(f *os.File, r io.Reader) error {
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	allowed := x.limits.MaxUnpackedBytes - x.unpacked
	if allowed < math.MaxInt64 {
		allowed++ // read one byte more than allowed, to see whether it exists
	}
	lr := io.LimitReader(r, allowed)
	for {
		if err := x.cancelled(); err != nil {
			return err
		}
		n, rerr := lr.Read(x.buf)
		if n > 0 {
			x.unpacked += int64(n)
			if x.unpacked > x.limits.MaxUnpackedBytes {
				return &LimitError{What: LimitUnpackedSize, Limit: x.limits.MaxUnpackedBytes}
			}
			if _, err := f.Write(x.buf[:n]); err != nil {
				return fmt.Errorf("extract: %w", err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return readError(rerr)
		}
	}
}
