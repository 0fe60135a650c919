package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxHostLength is the longest host name of an absolute redirect target.
const maxHostLength = 253

// reference is a path reference split at its first "#" and then its first
// "?".
type reference struct {
	path, query, fragment string
	hasQuery, hasFragment bool
}

// splitReference splits s into path, query string and fragment.
func splitReference(s string) reference {
	var r reference
	s, r.fragment, r.hasFragment = strings.Cut(s, "#")
	r.path, r.query, r.hasQuery = strings.Cut(s, "?")
	return r
}

// checkTarget validates a redirect's TO against its FROM and status.
func checkTarget(to string, from Pattern, status int) error {
	switch {
	case strings.HasPrefix(to, "/"):
		return splitReference(to).check(from)
	case !hasHTTPScheme(to):
		return errors.New(`TO must be a path starting with "/" or an http:// or https:// URL`)
	case status == 200 || status == 404:
		return fmt.Errorf(`TO: status %d needs a path starting with "/"; proxying to another site is not supported`, status)
	}
	return checkURL(to, from)
}

// hasHTTPScheme reports whether s starts with http:// or https://, in any
// case.
func hasHTTPScheme(s string) bool {
	s = strings.ToLower(s[:min(len(s), len("https://"))])
	return strings.HasPrefix(s, "http://") || s == "https://"
}

// check validates the parts of a reference; path may be empty only after
// a host.
func (r reference) check(from Pattern) error {
	if r.path != "" {
		if err := checkTargetPath(r.path, from); err != nil {
			return err
		}
	}
	if err := checkQueryPart("query string", r.query, r.hasQuery); err != nil {
		return err
	}
	return checkQueryPart("fragment", r.fragment, r.hasFragment)
}

// checkTargetPath validates the path of a TO, which starts with "/".
func checkTargetPath(path string, from Pattern) error {
	if err := checkChars("TO", path, isPatternChar); err != nil {
		return err
	}
	if strings.Contains(path, "*") {
		return errors.New(`TO: "*" is not allowed; use :splat for what FROM's "*" matched`)
	}
	if err := checkPercent("TO", path); err != nil {
		return err
	}
	if err := checkTargetSegments(path); err != nil {
		return err
	}
	return checkTargetPlaceholders(path, from)
}

// checkTargetSegments refuses "//", "." and ".." in a TO path.
func checkTargetSegments(path string) error {
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		if seg == "" && i < len(segs)-1 {
			return emptySegmentError("TO")
		}
		if isDotSegment(seg) {
			return dotSegmentError("TO")
		}
	}
	return nil
}

// checkTargetPlaceholders checks that every ":" in path starts a
// placeholder that from defines.
func checkTargetPlaceholders(path string, from Pattern) error {
	for i := 0; i < len(path); i++ {
		if path[i] != ':' {
			continue
		}
		name := placeholderAt(path[i+1:])
		if err := checkTargetPlaceholder(name, from); err != nil {
			return err
		}
		i += len(name)
	}
	return nil
}

// placeholderAt returns the longest run of name characters s starts with.
func placeholderAt(s string) string {
	n := 0
	for n < len(s) && isNameChar(s[n]) {
		n++
	}
	return s[:n]
}

// checkTargetPlaceholder checks one placeholder name used in TO.
func checkTargetPlaceholder(name string, from Pattern) error {
	switch {
	case name == "" || !('a' <= name[0] && name[0] <= 'z'):
		return errors.New(`TO: ":" must start a placeholder such as :splat or :name`)
	case name == "splat" && !from.Splat:
		return errors.New(`TO uses :splat but FROM does not end in "*"`)
	case name != "splat" && !slices.Contains(from.Placeholders, name):
		return fmt.Errorf("TO uses placeholder :%s, which FROM does not define", name)
	}
	return nil
}

// checkQueryPart validates a query string or fragment, if present.
func checkQueryPart(what, s string, present bool) error {
	if !present {
		return nil
	}
	if s == "" {
		return fmt.Errorf("TO: empty %s", what)
	}
	if err := checkChars("TO "+what, s, isQueryChar); err != nil {
		return err
	}
	return checkPercent("TO "+what, s)
}

// checkURL validates an absolute http(s) TO.
func checkURL(to string, from Pattern) error {
	rest, ok := strings.CutPrefix(to, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(to, "http://")
	}
	if !ok {
		return errors.New(`TO: the URL scheme must be lower-case "http://" or "https://"`)
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if err := checkHostPort(rest[:end]); err != nil {
		return err
	}
	return splitReference(rest[end:]).check(from)
}

// checkHostPort validates "host" or "host:port".
func checkHostPort(hp string) error {
	host, port, hasPort := strings.Cut(hp, ":")
	if err := checkHost(host); err != nil {
		return err
	}
	if hasPort {
		return checkPort(port)
	}
	return nil
}

// checkHost validates a lower-case DNS name.
func checkHost(host string) error {
	if host == "" {
		return errors.New("TO: the URL has no host")
	}
	if len(host) > maxHostLength {
		return fmt.Errorf("TO: the host is longer than %d characters", maxHostLength)
	}
	for i := 0; i < len(host); i++ {
		if 'A' <= host[i] && host[i] <= 'Z' {
			return errors.New("TO: the host must be lower-case")
		}
	}
	if err := checkChars("TO host", host, isHostChar); err != nil {
		return err
	}
	return checkLabels(host)
}

// checkLabels validates the dot-separated labels of a host.
func checkLabels(host string) error {
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("TO: the host has an empty label or one longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New(`TO: a host label must not start or end with "-"`)
		}
	}
	return nil
}

// checkPort validates a port number 1-65535.
func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || port[0] < '0' || port[0] > '9' || len(port) > 5 || n < 1 || n > 65535 {
		return errors.New("TO: the port must be a number from 1 to 65535")
	}
	return nil
}
