package segstore

// CombineCRC returns the CRC-32C (Castagnoli) of A followed by B, given crcA and crcB of each and the
// length of B, without reading either. It lets a writer derive an extent's CRC from CRCs it has
// already checked (a Kafka batch's CRC covers all but its first 21 bytes) instead of reading the
// extent again.
//
// The CRC of A‖B is the CRC of A carried through len(B) zero bytes, XORed with the CRC of B; carrying
// it is a multiplication by x^(8·len(B)) modulo the polynomial, computed from the powers x^(2^k)
// (a table) in O(log len(B)).
func CombineCRC(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	return multModP(xPow8n(uint64(lenB)), crcA) ^ crcB
}

// castagnoliReflected is the CRC-32C polynomial, bit-reversed as the table-driven CRC uses it.
const castagnoliReflected = 0x82f63b78

// multModP returns a·b modulo the polynomial, in the reflected representation (the x^0 coefficient
// is the top bit).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b *= x
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow2k[k] is x^(2^k) modulo the polynomial.
var xPow2k = func() (t [64]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// xPow8n returns x^(8n) modulo the polynomial: the factor that carries a CRC over n zero bytes.
func xPow8n(n uint64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(xPow2k[k%64], p)
		}
	}
	return p
}
