package manifest

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Redirect is one rule of a _redirects file.
type Redirect struct {
	Line   int     // 1-based line number in _redirects
	From   Pattern // path pattern
	To     string  // a path starting with "/" or an absolute http(s) URL; may contain ":splat" and the named placeholders of From
	Status int     // 301 (default), 302, 303, 307, 308, 200 (rewrite, To is a path), 404 (serve To with status 404, To is a path)
	Force  bool    // trailing "!" on the status: apply even when a file exists at the path
}

// statusCodes maps a STATUS field (without "!") to its code.
var statusCodes = map[string]int{
	"200": 200, "301": 301, "302": 302, "303": 303, "307": 307, "308": 308, "404": 404,
}

// conditionNames are the Netlify condition keys, lower-case.
var conditionNames = map[string]string{
	"country": "Country", "language": "Language", "role": "Role", "cookie": "Cookie",
}

// ParseRedirects parses and validates a _redirects file. Zero fields of l
// take their defaults. A refused line is a *LineError; an error reading r
// is returned wrapped. It returns nil when the file holds no rules.
func ParseRedirects(r io.Reader, l Limits) ([]Redirect, error) {
	l = l.WithDefaults()
	var out []Redirect
	err := scanLines(r, RedirectsFile, l, func(n int, line string) error {
		if isBlankOrComment(line) {
			return nil
		}
		if len(out) >= l.MaxRedirects {
			return fmt.Errorf("more than %d redirect rules (MaxRedirects)", l.MaxRedirects)
		}
		rd, err := parseRedirect(line)
		if err != nil {
			return err
		}
		rd.Line = n
		out = append(out, rd)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseRedirect parses the fields of one rule.
func parseRedirect(line string) (Redirect, error) {
	fields := splitFields(line)
	if err := checkFields(fields); err != nil {
		return Redirect{}, err
	}
	from, err := parsePattern("FROM", fields[0])
	if err != nil {
		return Redirect{}, err
	}
	status, force, err := parseStatus(fields)
	if err != nil {
		return Redirect{}, err
	}
	if err := checkTarget(fields[1], from, status); err != nil {
		return Redirect{}, err
	}
	return Redirect{From: from, To: fields[1], Status: status, Force: force}, nil
}

// checkFields refuses unsupported Netlify features and a wrong number of
// fields.
func checkFields(fields []string) error {
	for _, f := range fields[1:] {
		if err := checkUnsupportedField(f); err != nil {
			return err
		}
	}
	switch {
	case len(fields) < 2:
		return errors.New("expected FROM TO [STATUS[!]], found only one field")
	case len(fields) > 3:
		return errors.New("too many fields: the supported syntax is FROM TO [STATUS[!]]; " +
			"trailing comments, query-parameter matching and Country/Language/Role conditions are not supported")
	}
	return nil
}

// checkUnsupportedField refuses a field after FROM that is a trailing
// comment, a condition or a query-parameter match.
func checkUnsupportedField(f string) error {
	if strings.HasPrefix(f, "#") {
		return errors.New(`trailing comments are not supported; put the comment on its own line starting with "#"`)
	}
	if !strings.Contains(f, "=") || strings.HasPrefix(f, "/") || hasHTTPScheme(f) {
		return nil
	}
	key, _, _ := strings.Cut(f, "=")
	if name, ok := conditionNames[strings.ToLower(key)]; ok {
		return fmt.Errorf("%s= conditions are not supported (no Country, Language, Role or Cookie conditions)", name)
	}
	return errors.New("query-parameter matching (a key=value field) is not supported")
}

// parseStatus returns the status of a rule (301 without a third field)
// and whether it ends in "!".
func parseStatus(fields []string) (int, bool, error) {
	if len(fields) < 3 {
		return 301, false, nil
	}
	s, force := strings.CutSuffix(fields[2], "!")
	code, ok := statusCodes[s]
	if !ok {
		return 0, false, fmt.Errorf(`status %q is not supported: use 301 (the default), 302, 303, 307, 308, `+
			`200 (rewrite) or 404, optionally followed by "!"`, fields[2])
	}
	return code, force, nil
}
