package deploy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// A tree is a release's file list: one entry per regular file, naming its
// path, the SHA-256 of its bytes, its size and its mode. Its canonical
// encoding is stored as an object like any file, and the digest of that
// encoding names the release: two uploads of the same files have the same
// tree digest, whatever archive or directory they came from.
//
// The encoding is text, one line per file after a header line:
//
//	sitefleet-tree 1
//	<sha256> <size> <mode> <path>
//
// with the digest in lower-case hex, the size in decimal without leading
// zeros, the mode 644 or 755, and the path as an archive entry would be
// accepted (relative, clean, no "..", no control characters, no
// backslash). Entries are sorted by path element by element ("a", "a/b",
// "a-b"), each path appears once, and no path is both a file and the
// directory of another. Anything else is refused, so one set of files has
// exactly one encoding.
const treeHeader = "sitefleet-tree 1\n"

// TreeEntry is one file of a tree.
type TreeEntry struct {
	Path   string
	SHA256 string
	Size   int64
	Mode   fs.FileMode // 0o644 or 0o755
}

// TreeSummary counts a tree's files and bytes.
type TreeSummary struct {
	Files int
	Bytes int64
}

// TreeError reports a tree encoding that was refused, with its line.
type TreeError struct {
	Line   int
	Reason string
}

func (e *TreeError) Error() string {
	if e.Line == 0 {
		return "tree: " + e.Reason
	}
	return fmt.Sprintf("tree line %d: %s", e.Line, e.Reason)
}

// compareTreePaths orders paths element by element: "/" sorts before
// every other byte (paths hold no NUL).
func compareTreePaths(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}

// SortTree sorts entries into the order of the encoding.
func SortTree(entries []TreeEntry) {
	slices.SortFunc(entries, func(a, b TreeEntry) int { return compareTreePaths(a.Path, b.Path) })
}

// TreeWriter writes a tree's encoding entry by entry and computes its
// digest; entries must come in order (see SortTree).
type TreeWriter struct {
	w      io.Writer
	h      hashWriter
	prev   string
	n      int
	err    error
	header bool
}

type hashWriter interface {
	io.Writer
	Sum(b []byte) []byte
}

// NewTreeWriter returns a TreeWriter that writes to w (which may be nil:
// the digest alone).
func NewTreeWriter(w io.Writer) *TreeWriter {
	if w == nil {
		w = io.Discard
	}
	return &TreeWriter{w: w, h: sha256.New()}
}

func (t *TreeWriter) write(s string) {
	if t.err != nil {
		return
	}
	if _, err := io.WriteString(t.w, s); err != nil {
		t.err = fmt.Errorf("write tree: %w", err)
		return
	}
	_, _ = io.WriteString(t.h, s)
}

// Add writes one entry. It refuses an entry that is malformed or out of
// order, which makes the encoding non-canonical.
func (t *TreeWriter) Add(e TreeEntry) error {
	if !t.header {
		t.write(treeHeader)
		t.header = true
	}
	line := treeLine(e)
	if _, err := parseTreeLine(strings.TrimSuffix(line, "\n"), maxTreePath); err != nil {
		return fmt.Errorf("tree entry %q: %s", e.Path, err)
	}
	if t.n > 0 {
		if reason := treeOrder(t.prev, e.Path); reason != "" {
			return fmt.Errorf("tree entry %q: %s", e.Path, reason)
		}
	}
	t.prev = e.Path
	t.n++
	t.write(line)
	return t.err
}

// Close ends the encoding and returns its digest.
func (t *TreeWriter) Close() (string, error) {
	if !t.header {
		t.write(treeHeader)
		t.header = true
	}
	if t.err != nil {
		return "", t.err
	}
	return hex.EncodeToString(t.h.Sum(nil)), nil
}

func treeLine(e TreeEntry) string {
	mode := "644"
	if e.Mode&0o111 != 0 {
		mode = "755"
	}
	return e.SHA256 + " " + strconv.FormatInt(e.Size, 10) + " " + mode + " " + e.Path + "\n"
}

// EncodeTree returns the encoding of entries (sorted first) and its digest.
func EncodeTree(entries []TreeEntry) ([]byte, string, error) {
	SortTree(entries)
	var b bytes.Buffer
	tw := NewTreeWriter(&b)
	for _, e := range entries {
		if err := tw.Add(e); err != nil {
			return nil, "", err
		}
	}
	digest, err := tw.Close()
	return b.Bytes(), digest, err
}

// maxTreePath bounds a path in a tree when no Limits say otherwise.
const maxTreePath = 4096

// ReadTree decodes a tree from r one entry at a time, calling each for
// every entry in order, and returns its counts. It refuses an encoding
// that is not canonical or exceeds l (files, total bytes, path length)
// with a *TreeError or *LimitError, and stops at the first error each
// returns. It holds one line in memory at a time.
func ReadTree(r io.Reader, l Limits, each func(TreeEntry) error) (TreeSummary, error) {
	l = l.WithDefaults()
	br := bufio.NewReaderSize(r, 64<<10)
	maxLine := 64 + 1 + 20 + 1 + 3 + 1 + l.MaxPathLength + 1
	header, err := readTreeLine(br, len(treeHeader))
	if err != nil || header != treeHeader {
		return TreeSummary{}, &TreeError{Line: 1, Reason: fmt.Sprintf("the first line must be %q", strings.TrimSpace(treeHeader))}
	}
	var sum TreeSummary
	prev := ""
	for line := 2; ; line++ {
		text, err := readTreeLine(br, maxLine)
		if err == io.EOF {
			return sum, nil
		}
		if err != nil {
			return sum, &TreeError{Line: line, Reason: err.Error()}
		}
		e, perr := parseTreeLine(strings.TrimSuffix(text, "\n"), l.MaxPathLength)
		if perr != nil {
			var le *LimitError
			if errors.As(perr, &le) {
				return sum, le
			}
			return sum, &TreeError{Line: line, Reason: perr.Error()}
		}
		if sum.Files > 0 {
			if reason := treeOrder(prev, e.Path); reason != "" {
				return sum, &TreeError{Line: line, Reason: reason}
			}
		}
		prev = e.Path
		sum.Files++
		sum.Bytes += e.Size
		switch {
		case sum.Files > l.MaxFiles:
			return sum, &LimitError{What: LimitFileCount, Limit: int64(l.MaxFiles)}
		case sum.Bytes > l.MaxUnpackedBytes:
			return sum, &LimitError{What: LimitUnpackedSize, Limit: l.MaxUnpackedBytes}
		}
		if each != nil {
			if err := each(e); err != nil {
				return sum, err
			}
		}
	}
}

// DecodeTree decodes a whole tree held in memory.
func DecodeTree(b []byte, l Limits) ([]TreeEntry, error) {
	var out []TreeEntry
	_, err := ReadTree(bytes.NewReader(b), l, func(e TreeEntry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// readTreeLine reads one line ending in "\n", at most max bytes.
func readTreeLine(br *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > max {
			return "", fmt.Errorf("line longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return string(b), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(b) == 0:
			return "", io.EOF
		case err == io.EOF:
			return "", errors.New("the last line does not end in a newline")
		default:
			return "", err
		}
	}
}

// parseTreeLine parses "<sha256> <size> <mode> <path>".
func parseTreeLine(s string, maxPath int) (TreeEntry, error) {
	digest, rest, ok1 := strings.Cut(s, " ")
	size, rest, ok2 := strings.Cut(rest, " ")
	mode, p, ok3 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !ok3 {
		return TreeEntry{}, errors.New(`want "<sha256> <size> <mode> <path>"`)
	}
	if !isSHA256(digest) {
		return TreeEntry{}, fmt.Errorf("%.70q is not a lower-case hex SHA-256 digest", digest)
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != size {
		return TreeEntry{}, fmt.Errorf("size %.30q is not a decimal number without leading zeros", size)
	}
	var m fs.FileMode
	switch mode {
	case "644":
		m = 0o644
	case "755":
		m = 0o755
	default:
		return TreeEntry{}, fmt.Errorf("mode %.10q is not 644 or 755", mode)
	}
	name, skip, err := cleanEntryName(p, false, maxPath)
	var ee *EntryError
	if errors.As(err, &ee) {
		return TreeEntry{}, fmt.Errorf("path %q: %s", p, ee.Reason)
	}
	if err != nil {
		return TreeEntry{}, err
	}
	if skip || name != p {
		return TreeEntry{}, fmt.Errorf("path %q is not in canonical form", p)
	}
	return TreeEntry{Path: p, SHA256: digest, Size: n, Mode: m}, nil
}

// treeOrder returns why cur may not follow prev, or "".
func treeOrder(prev, cur string) string {
	switch c := compareTreePaths(prev, cur); {
	case c == 0:
		return fmt.Sprintf("path %q appears twice", cur)
	case c > 0:
		return fmt.Sprintf("path %q is out of order (after %q)", cur, prev)
	case strings.HasPrefix(cur, prev+"/"):
		return fmt.Sprintf("%q is a file and the directory of %q", prev, cur)
	}
	return ""
}
