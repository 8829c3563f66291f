package segstore

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// partsReader reads, seeks and writes exactly as a bytes.Reader over the concatenation does.
func TestPartsReader(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		var p parts
		for range rnd.IntN(6) {
			b := make([]byte, rnd.IntN(3)*rnd.IntN(40)) // empty parts too
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			p = append(p, b)
		}
		whole := p.concat()
		if !p.equal(whole) || int64(len(whole)) != p.size() {
			t.Fatalf("trial %d: concat and equal disagree", trial)
		}
		got, want := newPartsReader(p), bytes.NewReader(whole)
		for step := range 20 {
			switch rnd.IntN(3) {
			case 0:
				n := rnd.IntN(50)
				b1, b2 := make([]byte, n), make([]byte, n)
				n1, err1 := got.Read(b1)
				n2, err2 := want.Read(b2)
				if n2 == 0 && n == 0 {
					err2 = err1 // a bytes.Reader answers a zero-length read with nil, or EOF at the end
				}
				if n1 != n2 || !bytes.Equal(b1[:n1], b2[:n2]) || (err1 == nil) != (err2 == nil) {
					t.Fatalf("trial %d step %d: Read(%d) = %d, %v; want %d, %v", trial, step, n, n1, err1, n2, err2)
				}
			case 1:
				whence, target := rnd.IntN(3), int64(rnd.IntN(len(whole)+1))
				off := target - [...]int64{io.SeekStart: 0, io.SeekCurrent: got.off, io.SeekEnd: int64(len(whole))}[whence]
				o1, err1 := got.Seek(off, whence)
				o2, err2 := want.Seek(off, whence)
				if err1 != nil || err2 != nil || o1 != target || o2 != target {
					t.Fatalf("trial %d step %d: Seek(%d, %d) = %d, %v; want %d (bytes.Reader: %d, %v)", trial, step, off, whence, o1, err1, target, o2, err2)
				}
			case 2:
				var w1, w2 bytes.Buffer
				n1, _ := got.WriteTo(&w1)
				n2, _ := want.WriteTo(&w2)
				if n1 != n2 || !bytes.Equal(w1.Bytes(), w2.Bytes()) {
					t.Fatalf("trial %d step %d: WriteTo wrote %d bytes, want %d", trial, step, n1, n2)
				}
			}
		}
		for _, off := range []int64{-1, int64(len(whole)) + 1} {
			if _, err := newPartsReader(p).Seek(off, io.SeekStart); err == nil {
				t.Fatalf("trial %d: Seek(%d) of a %d-byte object succeeded", trial, off, len(whole))
			}
		}
	}
}
