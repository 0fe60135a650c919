package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A stream of objects, as uploads send them and peers fetch them, is a
// sequence of frames: a header line "<sha256> <size>\n", then exactly size
// bytes. The receiver verifies each object against its digest, so a frame
// that lies is refused whoever sent it.

// WriteObjectFrame writes one frame of size bytes read from r.
func WriteObjectFrame(w io.Writer, sha string, size int64, r io.Reader) error {
	if _, err := fmt.Fprintf(w, "%s %d\n", sha, size); err != nil {
		return fmt.Errorf("write object %s: %w", sha, err)
	}
	n, err := io.CopyN(w, r, size)
	if err != nil {
		return fmt.Errorf("write object %s (%d of %d bytes): %w", sha, n, size, err)
	}
	return nil
}

// ReadObjectFrames reads frames from r to its end, calling each with an
// object's digest, size and a reader of exactly its bytes; whatever each
// leaves unread is skipped. A malformed header is a *FormatError.
func ReadObjectFrames(r io.Reader, each func(sha string, size int64, body io.Reader) error) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			return n, nil
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) || err == io.EOF {
				return n, &FormatError{Err: fmt.Errorf("object %d: malformed frame header", n+1)}
			}
			return n, fmt.Errorf("read object %d: %w", n+1, err)
		}
		sha, size, ok := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
		sz, perr := strconv.ParseInt(size, 10, 64)
		if !ok || !isSHA256(sha) || perr != nil || sz < 0 {
			return n, &FormatError{Err: fmt.Errorf("object %d: frame header %.90q is not \"<sha256> <size>\"", n+1, line)}
		}
		body := io.LimitReader(br, sz)
		if err := each(sha, sz, body); err != nil {
			return n, err
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return n, fmt.Errorf("read object %s: %w", sha, err)
		}
		n++
	}
}
