package deploy

import "fmt"

// Default limits of a bundle.
const (
	DefaultMaxArchiveBytes  = 512 << 20
	DefaultMaxUnpackedBytes = 2 << 30
	DefaultMaxFiles         = 100000
	DefaultMaxPathLength    = 1024
)

// maxElementLength is the longest path element Linux file systems accept.
const maxElementLength = 255

// Limits bound what one bundle may hold.
type Limits struct {
	MaxArchiveBytes  int64 // compressed/archive size; default 512 MiB
	MaxUnpackedBytes int64 // sum of file sizes after extraction; default 2 GiB
	MaxFiles         int   // files + directories created; default 100000
	MaxPathLength    int   // bytes of an entry's path; default 1024
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxArchiveBytes:  DefaultMaxArchiveBytes,
		MaxUnpackedBytes: DefaultMaxUnpackedBytes,
		MaxFiles:         DefaultMaxFiles,
		MaxPathLength:    DefaultMaxPathLength,
	}
}

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxArchiveBytes == 0 {
		l.MaxArchiveBytes = d.MaxArchiveBytes
	}
	if l.MaxUnpackedBytes == 0 {
		l.MaxUnpackedBytes = d.MaxUnpackedBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxPathLength == 0 {
		l.MaxPathLength = d.MaxPathLength
	}
	return l
}

// validate returns an error if a limit is negative.
func (l Limits) validate() error {
	if l.MaxArchiveBytes < 0 || l.MaxUnpackedBytes < 0 || l.MaxFiles < 0 || l.MaxPathLength < 0 {
		return fmt.Errorf("bundle limits must not be negative: %+v", l)
	}
	return nil
}
