package deploy

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sha := sha256Hex([]byte("bundle"))
	sig, err := Sign(priv, sha)
	if err != nil {
		t.Fatal(err)
	}
	id, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	otherID, _ := KeyID(otherPub)

	got, err := Verify([]string{otherPub, pub}, sha, sig)
	if err != nil || got != id {
		t.Fatalf("Verify = %q, %v; want %q", got, err, id)
	}
	if got, err := Verify([]string{pub}, strings.ToUpper(sha), sig+"\n"); err != nil || got != id {
		t.Fatalf("Verify with upper-case hash and a newline = %q, %v", got, err)
	}
	otherSig, _ := Sign(otherPriv, sha)
	if got, err := Verify([]string{pub, otherPub}, sha, otherSig); err != nil || got != otherID {
		t.Fatalf("Verify by the second key = %q, %v; want %q", got, err, otherID)
	}

	bad := []struct {
		name string
		keys []string
		sha  string
		sig  string
	}{
		{"wrong key", []string{otherPub}, sha, sig},
		{"tampered hash", []string{pub}, sha256Hex([]byte("bundle!")), sig},
		{"tampered signature", []string{pub}, sha, flipBase64(t, sig)},
		{"no keys", nil, sha, sig},
	}
	for _, c := range bad {
		if _, err := Verify(c.keys, c.sha, c.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: got %v, want ErrBadSignature", c.name, err)
		}
	}
}

// flipBase64 returns the base64 of b64's bytes with one bit flipped.
func flipBase64(t testing.TB, b64 string) string {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

func TestSignatureMalformedInputs(t *testing.T) {
	pub, priv, _ := GenerateKey()
	sha := sha256Hex([]byte("bundle"))
	sig, _ := Sign(priv, sha)
	short := base64.StdEncoding.EncodeToString([]byte("short"))
	verify := []struct {
		name string
		keys []string
		sha  string
		sig  string
	}{
		{"key not base64", []string{"not base64!"}, sha, sig},
		{"key too short", []string{short}, sha, sig},
		{"one bad key among good ones", []string{pub, "%%%"}, sha, sig},
		{"signature not base64", []string{pub}, sha, "***"},
		{"signature too short", []string{pub}, sha, short},
		{"hash not hex", []string{pub}, strings.Repeat("z", 64), sig},
		{"hash too short", []string{pub}, sha[:62], sig},
	}
	for _, c := range verify {
		_, err := Verify(c.keys, c.sha, c.sig)
		if err == nil || errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify %s: got %v, want a descriptive error", c.name, err)
		}
	}
	corrupt, _ := base64.StdEncoding.DecodeString(priv)
	corrupt[40] ^= 1 // the public half
	for name, key := range map[string]string{
		"private key not base64": "@@@",
		"private key too short":  short,
		"private key corrupt":    base64.StdEncoding.EncodeToString(corrupt),
	} {
		if _, err := Sign(key, sha); err == nil {
			t.Errorf("Sign with %s succeeded", name)
		}
	}
	if _, err := Sign(priv, "abc"); err == nil {
		t.Error("Sign of a malformed hash succeeded")
	}
	if _, err := KeyID("nope"); err == nil {
		t.Error("KeyID of a malformed key succeeded")
	}
}

func TestSignWithSeed(t *testing.T) {
	pub, priv, _ := GenerateKey()
	raw, _ := base64.StdEncoding.DecodeString(priv)
	seed := base64.StdEncoding.EncodeToString(raw[:ed25519.SeedSize])
	sha := sha256Hex([]byte("seeded"))
	sig, err := Sign(seed, sha)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify([]string{pub}, sha, sig); err != nil {
		t.Fatal(err)
	}
}

func TestKeyIDStable(t *testing.T) {
	// A fixed key: its ID must never change, or configured IDs would.
	pub := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	id, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of 32 zero bytes starts 66687aadf862bd77.
	if id != "ed25519:66687aadf862bd77" {
		t.Fatalf("KeyID = %q", id)
	}
	again, _ := KeyID(" " + pub + "\n")
	if again != id {
		t.Fatalf("KeyID with whitespace = %q", again)
	}
	pub2, _, _ := GenerateKey()
	id2, _ := KeyID(pub2)
	if !regexp.MustCompile(`^ed25519:[0-9a-f]{16}$`).MatchString(id2) || id2 == id {
		t.Fatalf("KeyID = %q", id2)
	}
}
