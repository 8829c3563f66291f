package segstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkS3Put measures the S3 client's own cost of a Put (signing, hashing, sending), against an
// endpoint on loopback that reads the body and keeps nothing, so that no server work is counted.
//
//	go test ./segstore -run '^$' -bench S3Put -benchmem
func BenchmarkS3Put(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"0"`)
	}))
	b.Cleanup(srv.Close)
	s, err := NewS3(context.Background(), S3Config{Endpoint: srv.URL, Bucket: testBucket, PathStyle: true,
		AccessKeyID: "any", SecretAccessKey: "thing"})
	if err != nil {
		b.Fatal(err)
	}
	obj := make([]byte, 4<<20) // a full flush at the default --flush-bytes
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Put(context.Background(), fmt.Sprintf("seg/%d", i), obj); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
