package tls

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
)

// DefaultDHBits is the default size of generated DH parameters.
const DefaultDHBits = 2048

// Bounds on GenerateDHParams' bits; sizes below 2048 are for tests only.
const (
	MinDHBits = 256
	MaxDHBits = 8192
)

const pemDHParams = "DH PARAMETERS"

// ffdhe2048Hex is the ffdhe2048 prime of RFC 7919, Appendix A.1.
const ffdhe2048Hex = "" +
	"FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1" +
	"D8B9C583CE2D3695A9E13641146433FBCC939DCE249B3EF9" +
	"7D2FE363630C75D8F681B202AEC4617AD3DF1ED5D5FD6561" +
	"2433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
	"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE735" +
	"30ACCA4F483A797ABC0AB182B324FB61D108A94BB2C8E3FB" +
	"B96ADAB760D7F4681D4F42A3DE394DF4AE56EDE76372BB19" +
	"0B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
	"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD73" +
	"3BB5FCBC2EC22005C58EF1837D1683B2C6F34A26C1B2EFFA" +
	"886B423861285C97FFFFFFFFFFFFFFFF"

// dhParameter is the PKCS#3 DHParameter structure.
type dhParameter struct {
	Prime *big.Int
	Base  *big.Int
}

// FFDHE2048 returns the RFC 7919 ffdhe2048 group (generator 2) as a PEM
// "DH PARAMETERS" block for nginx's ssl_dhparam.
func FFDHE2048() []byte {
	p, _ := new(big.Int).SetString(ffdhe2048Hex, 16)
	out, err := encodeDHParams(p)
	if err != nil {
		return nil // unreachable: a positive constant always marshals; tests check
	}
	return out
}

// GenerateDHParams generates DH parameters with a new safe prime p = 2q+1
// of bits bits (DefaultDHBits in production; at least MinDHBits) and
// generator 2, as a PEM "DH PARAMETERS" block. p ≡ 7 (mod 8), so 2
// generates the subgroup of prime order q. Generating 2048 bits takes
// seconds to a minute; ctx is checked before every costly test, so a
// cancelled ctx returns ctx.Err() promptly.
func GenerateDHParams(ctx context.Context, bits int) ([]byte, error) {
	if bits < MinDHBits || bits > MaxDHBits {
		return nil, fmt.Errorf("dhparams: %d bits is outside %d..%d", bits, MinDHBits, MaxDHBits)
	}
	p, err := safePrime(ctx, bits)
	if err != nil {
		return nil, err
	}
	return encodeDHParams(p)
}

func encodeDHParams(p *big.Int) ([]byte, error) {
	der, err := asn1.Marshal(dhParameter{Prime: p, Base: big.NewInt(2)})
	if err != nil {
		return nil, fmt.Errorf("dhparams: encoding DHParameter: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemDHParams, Bytes: der}), nil
}

// MinServedDHBits is the smallest DH prime nodes give nginx: OpenSSL's
// default security level on Debian refuses smaller ones, and an nginx
// config it refuses would stop every change from being applied.
const MinServedDHBits = 2048

// DHParamsBits returns the size in bits of the prime of a PEM "DH
// PARAMETERS" block.
func DHParamsBits(pemBytes []byte) (int, error) {
	b, rest := pem.Decode(pemBytes)
	if b == nil || b.Type != pemDHParams {
		return 0, fmt.Errorf("dhparams: no %q PEM block", pemDHParams)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return 0, fmt.Errorf("dhparams: data after the %q block", pemDHParams)
	}
	var p dhParameter
	if rest, err := asn1.Unmarshal(b.Bytes, &p); err != nil || len(rest) > 0 || p.Prime == nil || p.Prime.Sign() <= 0 {
		return 0, fmt.Errorf("dhparams: malformed DHParameter")
	}
	return p.Prime.BitLen(), nil
}
