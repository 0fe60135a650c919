package manifest

// Default limits of a manifest.
const (
	DefaultMaxRedirects      = 1000
	DefaultMaxHeaderRules    = 200
	DefaultMaxHeadersPerRule = 50
	DefaultMaxLineLength     = 2048
	DefaultMaxFileBytes      = 1 << 20
)

// Limits bound a manifest. A zero or negative field means its default.
type Limits struct {
	MaxRedirects      int   // redirect rules in _redirects; default 1000
	MaxHeaderRules    int   // path blocks in _headers; default 200
	MaxHeadersPerRule int   // header lines in one path block; default 50
	MaxLineLength     int   // bytes of one line, without its line ending; default 2048
	MaxFileBytes      int64 // bytes of one file; default 1 MiB
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxRedirects:      DefaultMaxRedirects,
		MaxHeaderRules:    DefaultMaxHeaderRules,
		MaxHeadersPerRule: DefaultMaxHeadersPerRule,
		MaxLineLength:     DefaultMaxLineLength,
		MaxFileBytes:      DefaultMaxFileBytes,
	}
}

// WithDefaults returns l with every zero or negative field set to its
// default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	l.MaxRedirects = orDefault(l.MaxRedirects, d.MaxRedirects)
	l.MaxHeaderRules = orDefault(l.MaxHeaderRules, d.MaxHeaderRules)
	l.MaxHeadersPerRule = orDefault(l.MaxHeadersPerRule, d.MaxHeadersPerRule)
	l.MaxLineLength = orDefault(l.MaxLineLength, d.MaxLineLength)
	l.MaxFileBytes = orDefault(l.MaxFileBytes, d.MaxFileBytes)
	return l
}

// orDefault returns v if it is positive and def otherwise.
func orDefault[T int | int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
