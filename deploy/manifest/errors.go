package manifest

import "fmt"

// Names of the manifest files in a bundle's root; they are the File of a
// LineError.
const (
	RedirectsFile = "_redirects"
	HeadersFile   = "_headers"
)

// LineError is a refused line of a manifest file. Line is 1-based; it is 0
// when the whole file is refused (too large, not a regular file).
type LineError struct {
	File string // RedirectsFile or HeadersFile
	Line int
	Msg  string // what is wrong, e.g. `FROM: character '$' (U+0024) is not allowed`
}

// Error returns e.g. `_redirects line 3: <message>`, or `_headers: <message>`
// when Line is 0.
func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Msg)
}
