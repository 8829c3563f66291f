package segstore

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

func TestCombineCRC(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {21, 40}, {21, 1 << 20}, {7, 3}, {1000, 65537}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkCombine(t, a, b)
	}
}

func FuzzCombineCRC(f *testing.F) {
	f.Add([]byte("baseOffset..length..epoch.m.crc"), []byte("attributes and records"))
	f.Add([]byte{}, []byte{0})
	f.Fuzz(func(t *testing.T, a, b []byte) { checkCombine(t, a, b) })
}

func checkCombine(t *testing.T, a, b []byte) {
	t.Helper()
	want := crc32.Checksum(append(append([]byte(nil), a...), b...), castagnoli)
	if got := CombineCRC(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b))); got != want {
		t.Fatalf("CombineCRC of %d and %d bytes = %08x, want %08x", len(a), len(b), got, want)
	}
}

func BenchmarkCombineCRC(b *testing.B) {
	for b.Loop() {
		CombineCRC(0x12345678, 0x9abcdef0, 1<<20)
	}
}
