package tls

import (
	"context"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"
)

func decodeDH(t *testing.T, data []byte) dhParameter {
	t.Helper()
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "DH PARAMETERS" || len(rest) != 0 {
		t.Fatalf("not a single DH PARAMETERS block: %q", data)
	}
	var p dhParameter
	if rest, err := asn1.Unmarshal(b.Bytes, &p); err != nil || len(rest) != 0 {
		t.Fatalf("asn1: %v (rest %d)", err, len(rest))
	}
	return p
}

// rfc7919Prime2048 derives the ffdhe2048 prime from its definition,
// p = 2^2048 - 2^1984 + (floor(2^1918 * e) + 560316) * 2^64 - 1,
// independently of the hard-coded hex.
func rfc7919Prime2048() *big.Int {
	const guard = 64
	scale := new(big.Int).Lsh(big.NewInt(1), 1918+guard)
	e := new(big.Int)
	fact := big.NewInt(1)
	for k := int64(0); k < 600; k++ { // 600! > 2^1982
		if k > 0 {
			fact.Mul(fact, big.NewInt(k))
		}
		e.Add(e, new(big.Int).Quo(scale, fact))
	}
	e.Rsh(e, guard) // floor(2^1918 * e); truncation error < 600 units << 2^guard
	p := new(big.Int).Lsh(big.NewInt(1), 2048)
	p.Sub(p, new(big.Int).Lsh(big.NewInt(1), 1984))
	mid := e.Add(e, big.NewInt(560316))
	p.Add(p, mid.Lsh(mid, 64))
	return p.Sub(p, big.NewInt(1))
}

func TestFFDHE2048(t *testing.T) {
	p := decodeDH(t, FFDHE2048())
	if got, want := p.Prime.BitLen(), 2048; got != want {
		t.Errorf("prime bit length = %d, want %d", got, want)
	}
	if got, want := p.Base.Int64(), int64(2); got != want {
		t.Errorf("generator = %d, want %d", got, want)
	}
	if p.Prime.Cmp(rfc7919Prime2048()) != 0 {
		t.Errorf("prime differs from RFC 7919's definition")
	}
	assertSafePrime(t, p.Prime)
}

func assertSafePrime(t *testing.T, p *big.Int) {
	t.Helper()
	q := new(big.Int).Rsh(p, 1)
	if !p.ProbablyPrime(20) || !q.ProbablyPrime(20) {
		t.Errorf("%x is not a safe prime", p)
	}
	if got, want := new(big.Int).Mod(p, big.NewInt(8)).Int64(), int64(7); got != want {
		t.Errorf("p mod 8 = %d, want %d", got, want)
	}
}

func TestGenerateDHParams(t *testing.T) {
	for _, bits := range []int{256, 384} {
		out, err := GenerateDHParams(context.Background(), bits)
		if err != nil {
			t.Fatalf("GenerateDHParams(%d): %v", bits, err)
		}
		p := decodeDH(t, out)
		if got := p.Prime.BitLen(); got != bits {
			t.Errorf("prime bit length = %d, want %d", got, bits)
		}
		if got, want := p.Base.Int64(), int64(2); got != want {
			t.Errorf("generator = %d, want %d", got, want)
		}
		assertSafePrime(t, p.Prime)
	}
}

func TestGenerateDHParamsBits(t *testing.T) {
	for _, bits := range []int{0, 255, 8193} {
		if _, err := GenerateDHParams(context.Background(), bits); err == nil {
			t.Errorf("GenerateDHParams(%d) succeeded, want error", bits)
		}
	}
}

func TestGenerateDHParamsCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GenerateDHParams(ctx, 4096); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: error = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := GenerateDHParams(ctx, 4096)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("returned %v after the deadline, want promptly", d)
	}
}
