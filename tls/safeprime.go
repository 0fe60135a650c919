package tls

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
)

const (
	sieveBound = 1 << 13 // small primes used to sieve candidates
	searchSpan = 1 << 22 // candidates tried from one random start
)

// safePrime returns a random safe prime p = 2q+1 of exactly bits bits with
// q ≡ 3 (mod 4). From a random start it walks q in steps of 4, skipping
// candidates where q or p has a small factor, and runs the costly tests only
// on the survivors: a base-2 Fermat test of p, then ProbablyPrime(20) on
// both. This is the usual sieve; a loop over crypto/rand.Prime would need
// hundreds of full prime generations per result.
func safePrime(ctx context.Context, bits int) (*big.Int, error) {
	small := smallPrimes(sieveBound)
	for {
		q, err := randomStart(bits - 1)
		if err != nil {
			return nil, err
		}
		p, err := searchFrom(ctx, q, small)
		if p != nil || err != nil {
			return p, err
		}
	}
}

// randomStart returns a random n-bit integer with its two top bits set and
// ≡ 3 (mod 4), so that q + 4k stays n bits for every k < searchSpan.
func randomStart(n int) (*big.Int, error) {
	buf := make([]byte, (n+7)/8)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("dhparams: reading random bytes: %w", err)
	}
	q := new(big.Int).SetBytes(buf)
	q.SetBit(q, n-1, 1)
	q.SetBit(q, n-2, 1)
	q.SetBit(q, 1, 1)
	q.SetBit(q, 0, 1)
	// Clear the bits above n left over from the byte rounding.
	return q.And(q, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(n)), big.NewInt(1))), nil
}

// searchFrom walks q, q+4, ... for searchSpan steps; it returns (nil, nil)
// when nothing was found so the caller starts elsewhere.
func searchFrom(ctx context.Context, start *big.Int, small []uint64) (*big.Int, error) {
	rems := make([]uint64, len(small))
	m := new(big.Int)
	for i, sp := range small {
		rems[i] = m.Mod(start, m.SetUint64(sp)).Uint64()
	}
	for delta := uint64(0); delta < 4*searchSpan; delta += 4 {
		if hasSmallFactor(rems, small, delta) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q := new(big.Int).Add(start, new(big.Int).SetUint64(delta))
		if p := checkSafe(q); p != nil {
			return p, nil
		}
	}
	return nil, nil
}

// hasSmallFactor reports whether q = start+delta or p = 2q+1 is divisible
// by one of small (whose residues of start are rems).
func hasSmallFactor(rems, small []uint64, delta uint64) bool {
	for i, sp := range small {
		r := (rems[i] + delta) % sp
		if r == 0 || (2*r+1)%sp == 0 {
			return true
		}
	}
	return false
}

// checkSafe returns 2q+1 if it and q are (probably) prime, else nil.
func checkSafe(q *big.Int) *big.Int {
	p := new(big.Int).Lsh(q, 1)
	p.Add(p, big.NewInt(1))
	pm1 := new(big.Int).Sub(p, big.NewInt(1))
	if new(big.Int).Exp(big.NewInt(2), pm1, p).Cmp(big.NewInt(1)) != 0 {
		return nil
	}
	if !q.ProbablyPrime(20) || !p.ProbablyPrime(20) {
		return nil
	}
	return p
}

// smallPrimes returns the odd primes below n.
func smallPrimes(n int) []uint64 {
	composite := make([]bool, n)
	var out []uint64
	for i := 3; i < n; i += 2 {
		if composite[i] {
			continue
		}
		out = append(out, uint64(i))
		for j := i * i; j < n; j += 2 * i {
			composite[j] = true
		}
	}
	return out
}
