package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// sourceError marks an error of the reader under an archive decoder (disk
// I/O, a cancelled context), so that it is not mistaken for a malformed
// archive when it comes out of gzip, tar or zip.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// readError classifies an error returned while decoding an archive:
// errors of our own (limits, refused entries) pass through, errors of the
// underlying source are returned unwrapped of their mark, and everything
// else means the archive is malformed and becomes a *FormatError.
func readError(err error) error {
	var src *sourceError
	var lim *LimitError
	var ent *EntryError
	var fe *FormatError
	switch {
	case errors.As(err, &src):
		return fmt.Errorf("read archive: %w", src.err)
	case errors.As(err, &lim), errors.As(err, &ent), errors.As(err, &fe):
		return err
	}
	return &FormatError{Err: err}
}

// ctxReader fails reads once ctx is done, and marks r's errors other
// than io.EOF as source errors.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from r unless ctx is done.
func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, &sourceError{err: err}
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err: err}
	}
	return n, err
}

// ctxReaderAt is ctxReader for an io.ReaderAt.
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

// ReadAt reads from r unless ctx is done; r's errors other than io.EOF
// are marked as source errors.
func (c *ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, &sourceError{err: err}
	}
	n, err := c.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &sourceError{err: err}
	}
	return n, err
}

// entryReader prefixes the errors (other than io.EOF) of an archive
// entry's data with the entry's name.
type entryReader struct {
	r      io.Reader
	prefix string
}

// Read reads the entry's data.
func (e *entryReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", e.prefix, err)
	}
	return n, err
}
