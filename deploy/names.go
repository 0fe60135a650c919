package deploy

import (
	"path"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// cleanEntryName checks an archive entry's raw name and returns the
// relative slash-separated path to create in the bundle. It refuses rather
// than repairs: the only rewrites are stripping one leading "./" and, for
// a directory, one trailing "/". skip is true for the bundle root itself
// ("", ".", "./" as a directory), which creates nothing. A refused name
// yields an *EntryError, a name longer than maxLen a *LimitError.
func cleanEntryName(raw string, isDir bool, maxLen int) (name string, skip bool, err error) {
	if len(raw) > maxLen {
		return "", false, &LimitError{What: LimitPathLength, Limit: int64(maxLen)}
	}
	if reason := badCharacters(raw); reason != "" {
		return "", false, entryError(raw, reason)
	}
	name = strings.TrimPrefix(raw, "./")
	if strings.HasPrefix(name, "/") || hasDriveLetter(name) {
		return "", false, entryError(raw, "absolute path")
	}
	if isDir {
		name = strings.TrimSuffix(name, "/")
	}
	if name == "" || name == "." {
		if isDir {
			return "", true, nil
		}
		return "", false, entryError(raw, "empty name")
	}
	if reason := badElements(name); reason != "" {
		return "", false, entryError(raw, reason)
	}
	if path.Clean(name) != name || !filepath.IsLocal(name) {
		return "", false, entryError(raw, "path is not clean (empty, \".\" or trailing elements)")
	}
	return name, false, nil
}

// badCharacters returns why raw's characters are refused, or "".
func badCharacters(raw string) string {
	if !utf8.ValidString(raw) {
		return "name is not valid UTF-8"
	}
	for _, r := range raw {
		switch {
		case r == 0:
			return "name contains a NUL byte"
		case unicode.IsControl(r):
			return "name contains a control character"
		case r == '\\':
			return "name contains a backslash"
		}
	}
	return ""
}

// hasDriveLetter reports whether name starts like a Windows volume ("C:").
func hasDriveLetter(name string) bool {
	if len(name) < 2 || name[1] != ':' {
		return false
	}
	c := name[0] | 0x20
	return c >= 'a' && c <= 'z'
}

// badElements returns why name's elements are refused, or "": a ".."
// element anywhere (even one that stays inside the root), or an element
// longer than file systems accept.
func badElements(name string) string {
	depth, dotdot, escapes := 0, false, false
	for elem := range strings.SplitSeq(name, "/") {
		if len(elem) > maxElementLength {
			return "a path element is longer than 255 bytes"
		}
		switch elem {
		case "..":
			dotdot = true
			depth--
			if depth < 0 {
				escapes = true
			}
		case "", ".":
		default:
			depth++
		}
	}
	switch {
	case escapes:
		return "path escapes the bundle root"
	case dotdot:
		return `path contains a ".." element`
	}
	return ""
}
