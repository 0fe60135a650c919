package tls

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func newTestSealer(t *testing.T) *Sealer {
	t.Helper()
	b64, err := GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	key, err := ParseKey(b64)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	for _, plain := range [][]byte{nil, []byte("k"), bytes.Repeat([]byte("key"), 5000)} {
		sealed, err := s.Seal(plain, "imported-a")
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if !strings.HasPrefix(sealed, "v1:") {
			t.Errorf("sealed = %.10q, want v1: prefix", sealed)
		}
		got, err := s.Open(sealed, "imported-a")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("Open = %d bytes, want %d", len(got), len(plain))
		}
	}
	a, _ := s.Seal([]byte("x"), "c")
	b, _ := s.Seal([]byte("x"), "c")
	if a == b {
		t.Error("two seals of the same plaintext are equal; nonce not random")
	}
}

func TestSealKeyID(t *testing.T) {
	s := newTestSealer(t)
	sealed, _ := s.Seal([]byte("x"), "c")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got, want := len(s.KeyID()), 16; got != want {
		t.Errorf("len(KeyID) = %d, want %d", got, want)
	}
	if got, want := hex.EncodeToString(raw[:8]), s.KeyID(); got != want {
		t.Errorf("sealed key id = %s, want %s", got, want)
	}
}

func TestOpenErrors(t *testing.T) {
	s := newTestSealer(t)
	other := newTestSealer(t)
	sealed, err := s.Seal([]byte("secret"), "ctx")
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return "v1:" + base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name    string
		opener  *Sealer
		sealed  string
		context string
		want    error
	}{
		{"wrong key", other, sealed, "ctx", ErrWrongKey},
		{"other context", s, sealed, "ctx2", ErrCorrupt},
		{"empty context", s, sealed, "", ErrCorrupt},
		{"tampered ciphertext", s, flip(len(raw) - 1), "ctx", ErrCorrupt},
		{"tampered nonce", s, flip(8), "ctx", ErrCorrupt},
		{"tampered key id", s, flip(0), "ctx", ErrWrongKey},
		{"no prefix", s, strings.TrimPrefix(sealed, "v1:"), "ctx", ErrCorrupt},
		{"v2 prefix", s, "v2:" + strings.TrimPrefix(sealed, "v1:"), "ctx", ErrCorrupt},
		{"empty", s, "", "ctx", ErrCorrupt},
		{"bad base64", s, "v1:!!!", "ctx", ErrCorrupt},
		{"too short", s, "v1:" + base64.StdEncoding.EncodeToString(raw[:30]), "ctx", ErrCorrupt},
		{"truncated", s, "v1:" + base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), "ctx", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opener.Open(tt.sealed, tt.context)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned %q with an error", got)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	valid := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"valid", valid, ""},
		{"valid with newline", valid + "\n", ""},
		{"empty", "", "decodes to 0 bytes"},
		{"not base64", "not base64!", "not valid standard base64"},
		{"url base64", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))), "not valid standard base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), "decodes to 16 bytes, want 32"},
		{"33 bytes", base64.StdEncoding.EncodeToString(make([]byte, 33)), "decodes to 33 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParseKey(tt.in)
			if tt.wantErr == "" {
				if err != nil || len(key) != 32 {
					t.Fatalf("ParseKey = %d bytes, %v; want 32 bytes", len(key), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseKey error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer(%d bytes) succeeded, want error", n)
		}
	}
}
