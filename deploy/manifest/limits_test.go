package manifest

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxRedirects: 1000, MaxHeaderRules: 200, MaxHeadersPerRule: 50, MaxLineLength: 2048, MaxFileBytes: 1 << 20}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).WithDefaults(); got != want {
		t.Errorf("Limits{}.WithDefaults() = %+v, want %+v", got, want)
	}
	neg := Limits{MaxRedirects: -1, MaxHeaderRules: -1, MaxHeadersPerRule: -1, MaxLineLength: -1, MaxFileBytes: -1}
	if got := neg.WithDefaults(); got != want {
		t.Errorf("negative limits WithDefaults() = %+v, want %+v", got, want)
	}
	set := Limits{MaxRedirects: 1, MaxHeaderRules: 2, MaxHeadersPerRule: 3, MaxLineLength: 4, MaxFileBytes: 5}
	if got := set.WithDefaults(); got != set {
		t.Errorf("WithDefaults() = %+v, want %+v unchanged", got, set)
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name    string
		headers bool
		in      string
		l       Limits
		line    int
		want    string // "" when the input is accepted
	}{
		{"file at the limit", false, "/a /b\n", Limits{MaxFileBytes: 6}, 0, ""},
		{"file too large", false, "/a /b\n#", Limits{MaxFileBytes: 6}, 0, "larger than 6 bytes (MaxFileBytes)"},
		{"headers file too large", true, "/a\n  X-A: 1\n", Limits{MaxFileBytes: 11}, 0, "MaxFileBytes"},
		{"line at the limit", false, "/a /b\r\n/cd /e\r\n", Limits{MaxLineLength: 6}, 0, ""},
		{"line too long", false, "/a /b\n/cd /ef\n", Limits{MaxLineLength: 6}, 2, "longer than 6 bytes (MaxLineLength)"},
		{"comment too long", false, "#123456\n/a /b", Limits{MaxLineLength: 6}, 1, "MaxLineLength"},
		{"headers line too long", true, "/a\n  X-A: 123", Limits{MaxLineLength: 9}, 2, "MaxLineLength"},
		{"redirects at the limit", false, "/a /b\n# c\n/c /d", Limits{MaxRedirects: 2}, 0, ""},
		{"too many redirects", false, "/a /b\n# c\n/c /d\n\n/e /f", Limits{MaxRedirects: 2}, 5, "more than 2 redirect rules (MaxRedirects)"},
		{"header rules at the limit", true, "/a\n X: 1\n/b\n X: 2", Limits{MaxHeaderRules: 2}, 0, ""},
		{"too many header rules", true, "/a\n X: 1\n/b\n X: 2\n/c\n X: 3", Limits{MaxHeaderRules: 2}, 5, "more than 2 path blocks (MaxHeaderRules)"},
		{"headers at the limit", true, "/a\n X: 1\n X: 2\n/b\n X: 1\n X: 2", Limits{MaxHeadersPerRule: 2}, 0, ""},
		{"too many headers", true, "/a\n X: 1\n X: 2\n # c\n X: 3", Limits{MaxHeadersPerRule: 2}, 5, "more than 2 headers for path /a (MaxHeadersPerRule)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.headers {
				_, err = ParseHeaders(strings.NewReader(tt.in), tt.l)
			} else {
				_, err = ParseRedirects(strings.NewReader(tt.in), tt.l)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				return
			}
			file := RedirectsFile
			if tt.headers {
				file = HeadersFile
			}
			wantLineError(t, err, file, tt.line, tt.want)
		})
	}
}

// TestReadErrorIsNotLineError checks that an error of the reader is
// returned wrapped, not as a refused line.
func TestReadErrorIsNotLineError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("/a /b\n"), errReader{boom})
	_, err := ParseRedirects(r, Limits{})
	if !errors.Is(err, boom) {
		t.Errorf("ParseRedirects error = %v, want it to wrap %v", err, boom)
	}
	if _, ok := errors.AsType[*LineError](err); ok {
		t.Errorf("a read error is a *LineError: %v", err)
	}
	_, err = ParseHeaders(errReader{boom}, Limits{})
	if !errors.Is(err, boom) {
		t.Errorf("ParseHeaders error = %v, want it to wrap %v", err, boom)
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

// Read returns r.err.
func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestLineErrorError(t *testing.T) {
	tests := []struct {
		e    LineError
		want string
	}{
		{LineError{File: "_redirects", Line: 3, Msg: "bad"}, "_redirects line 3: bad"},
		{LineError{File: "_headers", Line: 0, Msg: "must be a regular file"}, "_headers: must be a regular file"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
