package deploy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// keyIDPrefix starts every key ID.
const keyIDPrefix = "ed25519:"

// GenerateKey makes a new Ed25519 key pair from crypto/rand and returns
// both keys as standard base64: the 32-byte public key and the 64-byte
// private key.
func GenerateKey() (publicKey, privateKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate signing key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(pub), base64.StdEncoding.EncodeToString(priv), nil
}

// Sign signs the 32-byte SHA-256 digest given as hex with privateKey
// (standard base64 of a 64-byte Ed25519 private key, or of its 32-byte
// seed) and returns the signature as standard base64.
func Sign(privateKey, sha256hex string) (signature string, err error) {
	priv, err := decodePrivateKey(privateKey)
	if err != nil {
		return "", err
	}
	digest, err := decodeDigest(sha256hex)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, digest)), nil
}

// Verify checks signature (standard base64) of the SHA-256 digest given as
// hex against each of publicKeys and returns the KeyID of the first key
// that verifies it. It returns ErrBadSignature if none does (or none is
// configured), and a descriptive error if an input is malformed.
func Verify(publicKeys []string, sha256hex, signature string) (keyID string, err error) {
	digest, err := decodeDigest(sha256hex)
	if err != nil {
		return "", err
	}
	sig, err := decodeBase64("signature", signature, ed25519.SignatureSize)
	if err != nil {
		return "", err
	}
	keys := make([]ed25519.PublicKey, len(publicKeys))
	for i, k := range publicKeys {
		pub, err := decodeBase64(fmt.Sprintf("public key %d", i+1), k, ed25519.PublicKeySize)
		if err != nil {
			return "", err
		}
		keys[i] = pub
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("%w (no public keys are configured)", ErrBadSignature)
	}
	for _, pub := range keys {
		if ed25519.Verify(pub, digest, sig) {
			return keyIDOf(pub), nil
		}
	}
	return "", ErrBadSignature
}

// KeyID returns a short stable identifier of a public key (standard
// base64): "ed25519:" and the first 16 hex digits of the SHA-256 of the
// key's bytes.
func KeyID(publicKey string) (string, error) {
	pub, err := decodeBase64("public key", publicKey, ed25519.PublicKeySize)
	if err != nil {
		return "", err
	}
	return keyIDOf(pub), nil
}

// keyIDOf returns the KeyID of raw public key bytes.
func keyIDOf(pub []byte) string {
	sum := sha256.Sum256(pub)
	return keyIDPrefix + hex.EncodeToString(sum[:8])
}

// decodePrivateKey decodes a private key or its seed.
func decodePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("private key is not standard base64: %w", err)
	}
	switch len(b) {
	case ed25519.PrivateKeySize:
		// The second half is the public key; a mismatch would make
		// signatures that verify against no configured key.
		priv := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if !bytes.Equal(priv, b) {
			return nil, fmt.Errorf("private key is corrupt: its public half does not match its seed")
		}
		return priv, nil
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	}
	return nil, fmt.Errorf("private key is %d bytes, want %d (or a %d-byte seed)", len(b), ed25519.PrivateKeySize, ed25519.SeedSize)
}

// decodeBase64 decodes what (standard base64, surrounding space ignored)
// and checks its length.
func decodeBase64(what, s string, size int) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%s is not standard base64: %w", what, err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%s is %d bytes, want %d", what, len(b), size)
	}
	return b, nil
}

// decodeDigest decodes a hex SHA-256 digest.
func decodeDigest(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("SHA-256 %q is not 64 hex digits", s)
	}
	return b, nil
}

// ReleaseDigest is what a release upload's signature signs: the SHA-256
// (hex) of the app, the version and the tree digest together, so that a
// signature made for one app and version does not verify for another.
func ReleaseDigest(app, version, tree string) string {
	sum := sha256.Sum256([]byte("sitefleet-release 1\n" + app + "\n" + version + "\n" + tree + "\n"))
	return hex.EncodeToString(sum[:])
}
