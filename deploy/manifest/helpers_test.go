package manifest

import (
	"errors"
	"strings"
	"testing"
)

// wantLineError fails t unless err is a *LineError of file and line whose
// message contains every part of want.
func wantLineError(t *testing.T, err error, file string, line int, want ...string) {
	t.Helper()
	le, ok := errors.AsType[*LineError](err)
	if !ok {
		t.Fatalf("error = %v (%T), want a *LineError", err, err)
	}
	if le.File != file || le.Line != line {
		t.Errorf("error at %s line %d, want %s line %d: %v", le.File, le.Line, file, line, le)
	}
	for _, w := range want {
		if !strings.Contains(le.Msg, w) {
			t.Errorf("message %q does not contain %q", le.Msg, w)
		}
	}
}

// pat returns the Pattern parsePattern should build.
func pat(raw string, segs []string, placeholders []string, splat bool) Pattern {
	return Pattern{Raw: raw, Segments: segs, Placeholders: placeholders, Splat: splat}
}

// lit returns the Pattern of a path without placeholders or splat.
func lit(raw string, segs ...string) Pattern {
	return pat(raw, segs, nil, false)
}
