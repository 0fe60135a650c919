package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// maxPlaceholderName is the longest placeholder name, in bytes.
const maxPlaceholderName = 32

// Pattern is a path pattern: a leading "/", literal segments, ":name"
// placeholder segments (a whole segment), and optionally a final "*"
// (splat) segment, as in "/blog/*" or "/*"; "/img*" is not allowed.
//
// Raw holds only the characters A-Z a-z 0-9 - . _ ~ / % : * and equals
// "/" + strings.Join(Segments, "/"). Segments has no empty element except
// a last one, for the root "/" ([""]) or a trailing slash ("/a/" is
// ["a", ""]); no segment is "." or ".." (nor "%2e", "%2e%2e", ...).
type Pattern struct {
	Raw          string   // as written
	Segments     []string // split on "/", without the leading empty one; placeholders keep their ":"; a trailing "*" is its own segment
	Placeholders []string // names in order, without ":"; nil if none
	Splat        bool     // the last segment is "*"
}

// parsePattern validates raw as a Pattern; what names the field in errors
// ("FROM", "path").
func parsePattern(what, raw string) (Pattern, error) {
	if err := checkPatternText(what, raw); err != nil {
		return Pattern{}, err
	}
	p := Pattern{Raw: raw, Segments: strings.Split(raw[1:], "/")}
	for i, seg := range p.Segments {
		if err := p.addSegment(what, seg, i == len(p.Segments)-1); err != nil {
			return Pattern{}, err
		}
	}
	return p, nil
}

// checkPatternText checks the start, characters and percent escapes of a
// pattern.
func checkPatternText(what, raw string) error {
	if strings.Contains(raw, "://") {
		return fmt.Errorf(`%s: domain-level rules (a URL instead of a path) are not supported; use a path starting with "/"`, what)
	}
	if !strings.HasPrefix(raw, "/") {
		return fmt.Errorf(`%s must start with "/"`, what)
	}
	if err := checkChars(what, raw, isPatternChar); err != nil {
		return err
	}
	if err := checkPercent(what, raw); err != nil {
		return err
	}
	return checkPatternEscapes(what, raw)
}

// checkPatternEscapes refuses percent escapes of characters a pattern
// cannot match on: the web server matches decoded paths, and only
// unreserved characters and ":@+,=" are safe to match there ("%2F" would
// be a slash inside a segment, "%22" a quote in the server's config).
func checkPatternEscapes(what, raw string) error {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		c := unhex(raw[i+1])<<4 | unhex(raw[i+2])
		if !isUnreserved(c) && !strings.ContainsRune(":@+,=", rune(c)) {
			return fmt.Errorf("%s: %q encodes %q, which a path pattern cannot match; only letters, digits and -._~:@+,= may be percent-encoded", what, raw[i:i+3], string(rune(c)))
		}
	}
	return nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// addSegment checks one segment and records a placeholder or splat.
func (p *Pattern) addSegment(what, seg string, last bool) error {
	switch {
	case seg == "" && !last:
		return emptySegmentError(what)
	case isDotSegment(seg):
		return dotSegmentError(what)
	case strings.Contains(seg, "*"):
		return p.addSplat(what, seg, last)
	case strings.Contains(seg, ":"):
		return p.addPlaceholder(what, seg)
	}
	return nil
}

// addSplat records a "*" segment, which must be the whole last one.
func (p *Pattern) addSplat(what, seg string, last bool) error {
	if seg != "*" || !last {
		return fmt.Errorf(`%s: "*" (splat) must be the whole last segment, as in /blog/* or /*`, what)
	}
	p.Splat = true
	return nil
}

// addPlaceholder records a ":name" segment.
func (p *Pattern) addPlaceholder(what, seg string) error {
	name := seg[1:]
	if seg[0] != ':' || strings.Contains(name, ":") {
		return fmt.Errorf(`%s: ":" is only allowed at the start of a placeholder segment such as /:name`, what)
	}
	if err := checkPlaceholderName(what, name); err != nil {
		return err
	}
	if slices.Contains(p.Placeholders, name) {
		return fmt.Errorf("%s: placeholder :%s appears twice", what, name)
	}
	p.Placeholders = append(p.Placeholders, name)
	return nil
}

// checkPlaceholderName checks a placeholder name of a pattern.
func checkPlaceholderName(what, name string) error {
	if name == "splat" {
		return fmt.Errorf(`%s: placeholder name "splat" is reserved; end the path with "*" instead`, what)
	}
	if !validName(name) {
		return fmt.Errorf("%s: invalid placeholder name %q: names are [a-z][a-z0-9_]*, at most %d characters", what, name, maxPlaceholderName)
	}
	return nil
}

// validName reports whether name matches [a-z][a-z0-9_]{0,31}.
func validName(name string) bool {
	if name == "" || len(name) > maxPlaceholderName || !('a' <= name[0] && name[0] <= 'z') {
		return false
	}
	for i := 1; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return false
		}
	}
	return true
}

// dotReplacer decodes percent-encoded dots.
var dotReplacer = strings.NewReplacer("%2e", ".", "%2E", ".")

// isDotSegment reports whether seg is "." or "..", also percent-encoded.
func isDotSegment(seg string) bool {
	s := dotReplacer.Replace(seg)
	return s == "." || s == ".."
}

// emptySegmentError refuses "//".
func emptySegmentError(what string) error {
	return fmt.Errorf(`%s: empty path segment ("//") is not allowed`, what)
}

// dotSegmentError refuses "." and "..".
func dotSegmentError(what string) error {
	return fmt.Errorf(`%s: "." and ".." segments are not allowed (also when percent-encoded)`, what)
}
