package manifest

import (
	"fmt"
	"unicode/utf8"
)

// The character classes below are the allowlists of the package: every
// byte of every value it returns passes one of them.

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isUnreserved reports whether c is an RFC 3986 unreserved character.
func isUnreserved(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

// isPatternChar reports whether c may appear in a path pattern.
func isPatternChar(c byte) bool {
	return isUnreserved(c) || c == '/' || c == '%' || c == ':' || c == '*'
}

// isQueryChar reports whether c may appear in the query string or the
// fragment of a redirect target.
func isQueryChar(c byte) bool {
	return isUnreserved(c) || c == '%' || c == '=' || c == '&' || c == '+' || c == ','
}

// isHostChar reports whether c may appear in the host of a redirect target.
func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// isNameChar reports whether c may appear in a placeholder name.
func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_'
}

// isHeaderNameChar reports whether c may appear in a header name.
func isHeaderNameChar(c byte) bool {
	return isAlnum(c) || c == '-'
}

// isHeaderValueChar reports whether c may appear in a header value:
// printable ASCII except the characters nginx gives a meaning inside a
// double-quoted string.
func isHeaderValueChar(c byte) bool {
	switch c {
	case '"', '\\', '$', '{', '}':
		return false
	}
	return 0x20 <= c && c <= 0x7e
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// checkChars returns an error naming the first character of s that ok
// refuses; what names the field.
func checkChars(what, s string, ok func(byte) bool) error {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return badChar(what, s[i:])
		}
	}
	return nil
}

// badChar returns the error for the character that rest starts with.
func badChar(what, rest string) error {
	r, _ := utf8.DecodeRuneInString(rest)
	return fmt.Errorf("%s: character %s is not allowed", what, describeRune(r))
}

// describeRune shows r in ASCII, e.g. `'$' (U+0024)` or `'\x00' (U+0000)`.
func describeRune(r rune) string {
	return fmt.Sprintf("%+q (U+%04X)", r, r)
}

// checkPercent returns an error if a "%" in s is not followed by two hex
// digits.
func checkPercent(what, s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return fmt.Errorf(`%s: bad percent escape: "%%" must be followed by two hex digits`, what)
		}
	}
	return nil
}
