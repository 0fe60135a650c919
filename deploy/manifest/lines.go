package manifest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// scanLines reads file from r within the limits of l and calls fn with
// each line (1-based number, line ending removed). An error fn returns
// becomes a LineError for that line, unless it already is one.
func scanLines(r io.Reader, file string, l Limits, fn func(n int, line string) error) error {
	lines, err := readLines(r, file, l.MaxFileBytes)
	if err != nil {
		return err
	}
	for i, raw := range lines {
		line, err := checkLine(raw, l.MaxLineLength)
		if err == nil {
			err = fn(i+1, line)
		}
		if err != nil {
			return asLineError(err, file, i+1)
		}
	}
	return nil
}

// readLines reads at most max bytes from r and splits them on "\n".
func readLines(r io.Reader, file string, max int64) ([]string, error) {
	data, err := io.ReadAll(io.LimitReader(r, plusOne(max)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if int64(len(data)) > max {
		msg := fmt.Sprintf("file is larger than %d bytes (MaxFileBytes)", max)
		return nil, &LineError{File: file, Msg: msg}
	}
	return strings.Split(string(data), "\n"), nil
}

// plusOne returns n+1, or n if that would overflow.
func plusOne(n int64) int64 {
	if n == math.MaxInt64 {
		return n
	}
	return n + 1
}

// checkLine removes a "\r" ending and refuses a line that is too long or
// not UTF-8.
func checkLine(line string, maxLen int) (string, error) {
	line = strings.TrimSuffix(line, "\r")
	if len(line) > maxLen {
		return "", fmt.Errorf("line is longer than %d bytes (MaxLineLength)", maxLen)
	}
	if !utf8.ValidString(line) {
		return "", errors.New("invalid UTF-8")
	}
	return line, nil
}

// asLineError returns err if it is a *LineError and a LineError of file
// and line n with err's message otherwise.
func asLineError(err error, file string, n int) error {
	if le, ok := errors.AsType[*LineError](err); ok {
		return le
	}
	return &LineError{File: file, Line: n, Msg: err.Error()}
}

// isBlankOrComment reports whether line holds only spaces and tabs, or
// starts with "#" after them.
func isBlankOrComment(line string) bool {
	t := strings.TrimLeft(line, " \t")
	return t == "" || t[0] == '#'
}

// splitFields splits line on runs of spaces and tabs.
func splitFields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
}
