package cleaner

import "hash/maphash"

// KeyMap maps keys, by a 128-bit hash, to the offset of their latest record: what one clean builds
// over a partition's dirty records. It holds at most its bound of keys, so that a clean's memory does
// not depend on how many keys a partition has; a clean whose map fills covers what the map holds and
// leaves the rest for the next (docs/INTERNALS.md, "The key map").
//
// Two keys with the same 128-bit hash would be taken for one (an older record of one dropped for a
// newer of the other): about 2^-64 for a billion keys, the bet Kafka's cleaner takes with MD5.
type KeyMap struct {
	s1, s2 maphash.Seed
	m      map[[16]byte]int64
	max    int
}

// EntryBytes is about what one entry of a KeyMap costs in memory (the hash, the offset, and the Go
// map's own overhead), for sizing it from a byte budget.
const EntryBytes = 48

// NewKeyMap returns a map of at most maxKeys keys (at least one).
func NewKeyMap(maxKeys int) *KeyMap {
	return &KeyMap{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), m: map[[16]byte]int64{}, max: max(maxKeys, 1)}
}

func (k *KeyMap) hash(key []byte) [16]byte {
	var h [16]byte
	a, b := maphash.Bytes(k.s1, key), maphash.Bytes(k.s2, key)
	for i := range 8 {
		h[i], h[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return h
}

// Put records offset as key's latest; false when the map is full and key is not in it.
func (k *KeyMap) Put(key []byte, offset int64) bool {
	h := k.hash(key)
	if _, ok := k.m[h]; !ok && len(k.m) >= k.max {
		return false
	}
	k.m[h] = offset
	return true
}

// Force records offset as key's latest even past the bound: a clean's first batch is taken whole,
// however many keys it holds, so that every clean makes progress (the bound is then exceeded by at
// most one batch's keys, which the batch size limits).
func (k *KeyMap) Force(key []byte, offset int64) { k.m[k.hash(key)] = offset }

// Latest is the offset of key's latest record, if the map holds it.
func (k *KeyMap) Latest(key []byte) (int64, bool) {
	o, ok := k.m[k.hash(key)]
	return o, ok
}

// Len is the number of keys held.
func (k *KeyMap) Len() int { return len(k.m) }

// Full reports whether the map holds as many keys as it may.
func (k *KeyMap) Full() bool { return len(k.m) >= k.max }
