package deploy

import (
	"errors"
	"fmt"
	"io/fs"
)

// The What values of a LimitError.
const (
	LimitArchiveSize  = "archive size"
	LimitUnpackedSize = "unpacked size"
	LimitFileCount    = "file count"
	LimitPathLength   = "path length"
)

// ErrBadSignature is returned by Verify when a well-formed signature does
// not verify against any of the configured public keys.
var ErrBadSignature = errors.New("bundle signature does not verify against any configured key")

// ErrNotFound is returned by Store.Info and Store.Open for a bundle the
// store does not hold. errors.Is(ErrNotFound, fs.ErrNotExist) is true.
var ErrNotFound error = notFoundError{}

type notFoundError struct{}

func (notFoundError) Error() string { return "bundle not found" }

func (notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// EntryError reports an archive entry that was refused: an unsupported type
// (link, device, ...) or an unsafe or malformed name.
type EntryError struct {
	Entry  string // the entry's name as it appears in the archive
	Reason string // why it was refused, e.g. "symbolic links are not allowed"
}

// Error returns `archive entry "<name>": <reason>`, the name quoted with %q
// so control characters and invalid UTF-8 are shown escaped.
func (e *EntryError) Error() string {
	return fmt.Sprintf("archive entry %q: %s", e.Entry, e.Reason)
}

// LimitError reports that a bundle exceeds one of its Limits.
type LimitError struct {
	What  string // LimitArchiveSize, LimitUnpackedSize, LimitFileCount or LimitPathLength
	Limit int64
}

// Error returns e.g. "archive size exceeds the limit of 1024 bytes".
func (e *LimitError) Error() string {
	unit := " bytes"
	if e.What == LimitFileCount {
		unit = " files and directories"
	}
	return fmt.Sprintf("%s exceeds the limit of %d%s", e.What, e.Limit, unit)
}

// FormatError reports bytes that are not a supported, well-formed archive:
// an unknown format, a corrupt gzip stream, a truncated tar, a zip with a
// bad checksum.
type FormatError struct{ Err error }

// Error returns "invalid archive: " and the underlying reason.
func (e *FormatError) Error() string { return "invalid archive: " + e.Err.Error() }

// Unwrap returns the underlying reader error.
func (e *FormatError) Unwrap() error { return e.Err }

// HashMismatchError reports an archive whose SHA-256 differs from the
// expected one. Both are lower-case hex.
type HashMismatchError struct{ Expected, Actual string }

// Error names both digests.
func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("archive SHA-256 is %s, expected %s", e.Actual, e.Expected)
}

// formatErrorf returns a FormatError with a formatted reason.
func formatErrorf(format string, args ...any) *FormatError {
	return &FormatError{Err: fmt.Errorf(format, args...)}
}

// entryError returns an EntryError for the raw entry name.
func entryError(raw, reason string) *EntryError {
	return &EntryError{Entry: raw, Reason: reason}
}
