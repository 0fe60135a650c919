package tls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

const (
	pemCertificate = "CERTIFICATE"
	pemPKCS8       = "PRIVATE KEY"
	pemPKCS1       = "RSA PRIVATE KEY"
	pemSEC1        = "EC PRIVATE KEY"
	pemECParams    = "EC PARAMETERS"
	pemEncrypted   = "ENCRYPTED PRIVATE KEY"
	minRSABits     = 2048
)

const pemBegin = "-----BEGIN "

func parseChain(data []byte) ([]*x509.Certificate, error) {
	if len(data) > MaxChainBytes {
		return nil, importErr(CheckParseChain, "chain is %d bytes, at most %d allowed", len(data), MaxChainBytes)
	}
	blocks, err := decodePEM(data, CheckParseChain, "chain")
	if err != nil {
		return nil, err
	}
	if len(blocks) > MaxChainCerts {
		return nil, importErr(CheckParseChain, "chain has %d certificates, at most %d allowed", len(blocks), MaxChainCerts)
	}
	chain := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != pemCertificate {
			return nil, importErr(CheckParseChain, "block %d of the chain is %q; the chain may only hold CERTIFICATE blocks%s",
				i+1, b.Type, keyHint(b.Type))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, importErr(CheckParseChain, "certificate %d of the chain does not parse: %v", i+1, err)
		}
		chain = append(chain, c)
	}
	return chain, nil
}

func keyHint(blockType string) string {
	if strings.HasSuffix(blockType, "PRIVATE KEY") {
		return " (put the private key in the key field, never in the chain)"
	}
	return ""
}

// decodePEM decodes every PEM block of data, refusing data with no block
// or with a block that does not decode (truncated, bad base64).
func decodePEM(data []byte, check, what string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, importErr(check, "the %s holds no PEM block (expected -----BEGIN ...-----)", what)
	}
	if n := bytes.Count(data, []byte(pemBegin)); n != len(blocks) {
		return nil, importErr(check, "the %s holds %d PEM headers but only %d well-formed blocks; a block is truncated or damaged",
			what, n, len(blocks))
	}
	return blocks, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	if len(data) > MaxKeyBytes {
		return nil, importErr(CheckParseKey, "key is %d bytes, at most %d allowed", len(data), MaxKeyBytes)
	}
	blocks, err := decodePEM(data, CheckParseKey, "key")
	if err != nil {
		return nil, err
	}
	if len(blocks) > 1 && blocks[0].Type == pemECParams {
		blocks = blocks[1:] // as written by openssl ecparam -genkey
	}
	if len(blocks) != 1 {
		return nil, importErr(CheckParseKey, "the key field holds %d PEM blocks, want exactly one private key", len(blocks))
	}
	return parseKeyBlock(blocks[0])
}

func parseKeyBlock(b *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	switch b.Type {
	case pemPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case pemPKCS1:
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case pemSEC1:
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case pemEncrypted:
		return nil, importErr(CheckParseKey, "the key is encrypted; decrypt it first (openssl pkey -in key.pem -out clear.pem)")
	case pemCertificate:
		return nil, importErr(CheckParseKey, "the key field holds a CERTIFICATE; put certificates in the chain field")
	default:
		return nil, importErr(CheckParseKey, "unsupported key block %q; want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, importErr(CheckParseKey, "%s block does not parse: %v", b.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, importErr(CheckKeyType, "key of type %T cannot sign", key)
	}
	return signer, nil
}

func checkKeyType(p Parsed) error {
	switch k := p.Key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return importErr(CheckKeyType, "ECDSA curve %s is not supported; use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return importErr(CheckKeyType, "RSA key is %d bits; at least %d required", bits, minRSABits)
		}
	default:
		return importErr(CheckKeyType, "%s keys are not supported; use ECDSA (P-256, P-384) or RSA (2048 bits or more)", keyTypeName(p.Key))
	}
	return nil
}

func keyTypeName(k crypto.Signer) string {
	if _, ok := k.(ed25519.PrivateKey); ok {
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

func checkKeyMatch(p Parsed) error {
	pub, ok := p.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(p.Leaf.PublicKey) {
		return importErr(CheckKeyMismatch, "the private key does not belong to the first certificate of the chain (%s)", describe(p.Leaf))
	}
	return nil
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key as PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
}

func encodeChain(chain []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range chain {
		buf.Write(pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: c.Raw}))
	}
	return buf.Bytes()
}
