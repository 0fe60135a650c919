package manifest

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds of a header line.
const (
	maxHeaderName  = 64
	maxHeaderValue = 1024
)

// HeaderRule is one block of a _headers file: a path pattern and the
// headers to set on responses for it.
type HeaderRule struct {
	Line    int // 1-based line number of the path line
	Path    Pattern
	Headers []Header // in file order; a name may repeat
	// BasicAuth are the logins a "Basic-Auth: user:password ..." line
	// asks for on the path; never sent as a header.
	BasicAuth []Credential
}

// Credential is one user and password of a Basic-Auth line. User is 1-64
// of [A-Za-z0-9._@+-]; Password 1-128 printable ASCII characters
// without spaces.
type Credential struct{ User, Password string }

// MaxCredentials is how many logins one bundle's Basic-Auth lines may
// give in all.
const MaxCredentials = 50

// Header is one response header. Name matches [A-Za-z0-9-]{1,64} and is
// not a hop-by-hop, framing or server-managed header; Value is 1-1024
// printable ASCII characters without '"', '\', '$', '{', '}' or leading
// and trailing spaces.
type Header struct{ Name, Value string }

// ParseHeaders parses and validates a _headers file. Zero fields of l take
// their defaults. A refused line is a *LineError; an error reading r is
// returned wrapped. It returns nil when the file holds no rules.
func ParseHeaders(r io.Reader, l Limits) ([]HeaderRule, error) {
	p := headerParser{limits: l.WithDefaults()}
	if err := scanLines(r, HeadersFile, p.limits, p.line); err != nil {
		return nil, err
	}
	if err := p.closeRule(); err != nil {
		return nil, err
	}
	return p.rules, nil
}

// headerParser holds the state of ParseHeaders.
type headerParser struct {
	limits Limits
	rules  []HeaderRule // the last one is open while lines are read
}

// line handles line n of the file.
func (p *headerParser) line(n int, line string) error {
	switch {
	case isBlankOrComment(line):
		return nil
	case line[0] == ' ' || line[0] == '\t':
		return p.header(strings.Trim(line, " \t"))
	}
	return p.path(n, line)
}

// path starts a rule at a path line, once the previous rule is complete.
func (p *headerParser) path(n int, line string) error {
	pat, err := parsePathLine(line)
	if err != nil {
		return err
	}
	if err := p.closeRule(); err != nil {
		return err
	}
	if len(p.rules) >= p.limits.MaxHeaderRules {
		return fmt.Errorf("more than %d path blocks (MaxHeaderRules)", p.limits.MaxHeaderRules)
	}
	p.rules = append(p.rules, HeaderRule{Line: n, Path: pat})
	return nil
}

// parsePathLine parses an unindented line, which holds one Pattern.
func parsePathLine(line string) (Pattern, error) {
	fields := splitFields(line)
	if len(fields) != 1 {
		return Pattern{}, errors.New("a path line must hold only the path; header lines must be indented")
	}
	pat, err := parsePattern("path", fields[0])
	if err != nil {
		return Pattern{}, withHeaderHint(err, fields[0])
	}
	return pat, nil
}

// withHeaderHint adds a hint to err if field looks like an unindented
// header line.
func withHeaderHint(err error, field string) error {
	if !strings.HasPrefix(field, "/") && !strings.Contains(field, "://") && strings.Contains(field, ":") {
		return fmt.Errorf("%w (header lines must be indented)", err)
	}
	return err
}

// closeRule refuses the last rule if it has no headers.
func (p *headerParser) closeRule() error {
	if len(p.rules) == 0 {
		return nil
	}
	last := p.rules[len(p.rules)-1]
	if len(last.Headers) == 0 && len(last.BasicAuth) == 0 {
		msg := fmt.Sprintf("path %s has no headers: follow it with indented \"Name: value\" lines", last.Path.Raw)
		return &LineError{File: HeadersFile, Line: last.Line, Msg: msg}
	}
	return nil
}

// header adds a trimmed, indented "Name: value" line to the open rule.
func (p *headerParser) header(text string) error {
	if len(p.rules) == 0 {
		return errors.New("indented line before any path line: a path line (not indented) must come first")
	}
	rule := &p.rules[len(p.rules)-1]
	if name, value, ok := strings.Cut(text, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Basic-Auth") {
		creds, err := parseBasicAuth(strings.Trim(value, " \t"))
		if err != nil {
			return err
		}
		total := len(creds)
		for _, r := range p.rules {
			total += len(r.BasicAuth)
		}
		if total > MaxCredentials {
			return fmt.Errorf("Basic-Auth lines give more than %d logins in all", MaxCredentials)
		}
		rule.BasicAuth = append(rule.BasicAuth, creds...)
		return nil
	}
	if len(rule.Headers) >= p.limits.MaxHeadersPerRule {
		return fmt.Errorf("more than %d headers for path %s (MaxHeadersPerRule)", p.limits.MaxHeadersPerRule, rule.Path.Raw)
	}
	h, err := parseHeader(text)
	if err != nil {
		return err
	}
	rule.Headers = append(rule.Headers, h)
	return nil
}

// parseHeader parses and validates "Name: value".
func parseHeader(text string) (Header, error) {
	if strings.HasPrefix(text, "!") {
		return Header{}, errors.New(`unsetting headers ("! Name") is not supported`)
	}
	name, value, ok := strings.Cut(text, ":")
	if !ok {
		return Header{}, errors.New(`header line has no ":"; expected "Name: value"`)
	}
	h := Header{Name: name, Value: strings.Trim(value, " \t")}
	if err := checkHeaderName(h.Name); err != nil {
		return Header{}, err
	}
	return h, checkHeaderValue(h.Name, h.Value)
}

// checkHeaderName validates a header name.
func checkHeaderName(name string) error {
	if name == "" || len(name) > maxHeaderName {
		return fmt.Errorf("header name must be 1 to %d characters", maxHeaderName)
	}
	if err := checkChars("header name", name, isHeaderNameChar); err != nil {
		return err
	}
	if isForbiddenHeader(name) {
		return fmt.Errorf("header %s is not allowed: hop-by-hop, framing and server-managed headers "+
			"(Connection, Keep-Alive, Transfer-Encoding, Content-Length, Upgrade, Proxy-*, TE, Trailer, Host, Date, Server, X-Accel-*) cannot be set", name)
	}
	return nil
}

// forbiddenHeaders are the lower-case names checkHeaderName refuses.
var forbiddenHeaders = map[string]bool{
	"connection": true, "keep-alive": true, "transfer-encoding": true, "content-length": true,
	"upgrade": true, "te": true, "trailer": true, "host": true, "date": true, "server": true,
}

// isForbiddenHeader reports whether name is a hop-by-hop, framing or
// server-managed header, in any case.
func isForbiddenHeader(name string) bool {
	lower := strings.ToLower(name)
	return forbiddenHeaders[lower] || strings.HasPrefix(lower, "proxy-") || strings.HasPrefix(lower, "x-accel-")
}

// checkHeaderValue validates a trimmed header value.
func checkHeaderValue(name, value string) error {
	if value == "" || len(value) > maxHeaderValue {
		return fmt.Errorf("header %s: the value must be 1 to %d characters", name, maxHeaderValue)
	}
	return checkChars("header "+name+" value", value, isHeaderValueChar)
}

// parseBasicAuth parses the value of a Basic-Auth line: space-separated
// user:password pairs, as Netlify's _headers has them.
func parseBasicAuth(value string) ([]Credential, error) {
	fields := strings.Fields(value)
	if len(fields) == 0 {
		return nil, errors.New("Basic-Auth: give user:password pairs separated by spaces")
	}
	out := make([]Credential, 0, len(fields))
	for _, f := range fields {
		user, pass, ok := strings.Cut(f, ":")
		if !ok || !validUser(user) || pass == "" || len(pass) > 128 || checkChars("Basic-Auth password", pass, isPasswordChar) != nil {
			return nil, errors.New("Basic-Auth: each login must be user:password, the user 1-64 of A-Z a-z 0-9 . _ @ + -, the password 1-128 printable characters without spaces")
		}
		out = append(out, Credential{User: user, Password: pass})
	}
	return out, nil
}

func validUser(u string) bool {
	if u == "" || len(u) > 64 {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@+-", c) >= 0) {
			return false
		}
	}
	return true
}

func isPasswordChar(c byte) bool { return c > ' ' && c < 0x7f }
