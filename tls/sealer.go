package tls

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size in bytes of the cluster secrets key (AES-256).
const KeySize = 32

const (
	sealPrefix = "v1:"
	keyIDSize  = 8
	nonceSize  = 12
)

// ErrWrongKey reports a sealed value that was sealed with another cluster key.
var ErrWrongKey = errors.New("secrets: sealed with another cluster key (secrets.key)")

// ErrCorrupt reports a sealed value that is malformed, was altered, or
// belongs to another record (its context does not match).
var ErrCorrupt = errors.New("secrets: sealed value is corrupt or belongs to another record")

// Sealer encrypts and decrypts secrets at rest with AES-256-GCM under the
// cluster key. It is safe for concurrent use.
type Sealer struct {
	aead  cipher.AEAD
	keyID [keyIDSize]byte
}

// NewSealer returns a Sealer for a 32-byte AES-256 key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: creating GCM: %w", err)
	}
	s := &Sealer{aead: aead}
	sum := sha256.Sum256(key)
	copy(s.keyID[:], sum[:keyIDSize])
	return s, nil
}

// ParseKey decodes a standard-base64 cluster key and checks it is 32 bytes.
func ParseKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("secrets: key is not valid standard base64: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: key decodes to %d bytes, want %d (generate one with GenerateKey)", len(key), KeySize)
	}
	return key, nil
}

// GenerateKey returns a new random cluster key, base64-encoded for ParseKey.
func GenerateKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("secrets: reading random key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// KeyID returns the hex of the first 8 bytes of SHA-256(key), which every
// sealed value carries; nodes compare it to detect a mismatched cluster key.
func (s *Sealer) KeyID() string {
	return hex.EncodeToString(s.keyID[:])
}

// Seal encrypts plaintext bound to context (typically the certificate ID)
// and returns "v1:" + base64(keyID || nonce || ciphertext).
func (s *Sealer) Seal(plaintext []byte, context string) (string, error) {
	buf := make([]byte, keyIDSize+nonceSize, keyIDSize+nonceSize+len(plaintext)+s.aead.Overhead())
	copy(buf, s.keyID[:])
	nonce := buf[keyIDSize:]
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: reading random nonce: %w", err)
	}
	buf = s.aead.Seal(buf, nonce, plaintext, []byte(context))
	return sealPrefix + base64.StdEncoding.EncodeToString(buf), nil
}

// Open decrypts a value produced by Seal with the same context. It fails
// with ErrWrongKey if the value was sealed with another cluster key and with
// ErrCorrupt if it is malformed, altered, or sealed for another context.
func (s *Sealer) Open(sealed, context string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q version prefix", ErrCorrupt, sealPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid base64: %v", ErrCorrupt, err)
	}
	if len(raw) < keyIDSize+nonceSize+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(raw))
	}
	if string(raw[:keyIDSize]) != string(s.keyID[:]) {
		return nil, fmt.Errorf("%w: value key id %x, this node's key id %s",
			ErrWrongKey, raw[:keyIDSize], s.KeyID())
	}
	nonce := raw[keyIDSize : keyIDSize+nonceSize]
	plain, err := s.aead.Open(nil, nonce, raw[keyIDSize+nonceSize:], []byte(context))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed for context %q", ErrCorrupt, context)
	}
	return plain, nil
}
