package segstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// putSeen is what an S3 front saw of a PUT.
type putSeen struct {
	hash          string // X-Amz-Content-Sha256
	contentLength int64
	chunked       bool
}

// recordPuts starts a front to an embedded S3 server that records every PUT's headers.
func recordPuts(t *testing.T) (*s3Front, func() []putSeen) {
	var mu sync.Mutex
	var seen []putSeen
	front := newS3Front(t, httptest.NewServer, func(_ http.Handler, _ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut {
			mu.Lock()
			seen = append(seen, putSeen{r.Header.Get("X-Amz-Content-Sha256"), r.ContentLength, len(r.TransferEncoding) > 0})
			mu.Unlock()
		}
		return false
	})
	return front, func() []putSeen {
		mu.Lock()
		defer mu.Unlock()
		return append([]putSeen(nil), seen...)
	}
}

// TestS3PutReaderStreams: a streamed PUT has a Content-Length (S3 refuses chunked uploads without
// one) and, where Put signs its payload (plain HTTP to another host), an unseekable body goes
// UNSIGNED-PAYLOAD, since it cannot be hashed before it is sent; a seekable one is signed.
func TestS3PutReaderStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	front, seen := recordPuts(t)
	s := newS3Store(t, front.URL, testBucket)
	s.putOpts = nil // as for http://minio:9000: Put signs the payload
	data := testBytes(1 << 20)
	sum := sha256.Sum256(data)

	if err := s.PutReader(ctx, "part/unseekable", int64(len(data)), unseekable{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReader(ctx, "part/seekable", int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	want := []putSeen{
		{"UNSIGNED-PAYLOAD", int64(len(data)), false},
		{hex.EncodeToString(sum[:]), int64(len(data)), false},
	}
	if got := seen(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("PUTs seen %+v, want %+v", got, want)
	}
	for _, key := range []string{"part/unseekable", "part/seekable"} {
		if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get(%s) = %d bytes, %v", key, len(got), err)
		}
	}
}

// TestS3PutReaderAttempts: an unseekable body is sent once, and its failure is the caller's; a
// seekable one is retried, and a retry that meets its own earlier attempt's object succeeds.
func TestS3PutReaderAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var puts, fail, lose atomic.Int32
	front := newS3Front(t, httptest.NewServer, func(proxy http.Handler, w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut {
			return false
		}
		puts.Add(1)
		switch {
		case fail.Add(-1) >= 0: // refused, as S3 does under load
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "<Error><Code>InternalError</Code><Message>try again</Message></Error>")
			return true
		case lose.Add(-1) >= 0: // stored, but the answer is lost
			proxy.ServeHTTP(httptest.NewRecorder(), r)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return true
		}
		return false
	})
	s := newS3Store(t, front.URL, testBucket)
	data := testBytes(100_000)
	attempt := func(key string, r io.Reader, failures, losses int32) error {
		puts.Store(0)
		fail.Store(failures)
		lose.Store(losses)
		return s.PutReader(ctx, key, int64(len(data)), r)
	}

	if err := attempt("part/once", unseekable{bytes.NewReader(data)}, 1, 0); err == nil || puts.Load() != 1 {
		t.Fatalf("unseekable PutReader against a failing PUT = %v after %d attempts, want an error after 1", err, puts.Load())
	}
	if _, err := s.Get(ctx, "part/once"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after the failed put = %v, want ErrNotFound", err)
	}
	if err := attempt("part/retried", bytes.NewReader(data), 1, 0); err != nil || puts.Load() != 2 {
		t.Fatalf("seekable PutReader against one failing PUT = %v after %d attempts, want success after 2", err, puts.Load())
	}
	if err := attempt("part/lost", bytes.NewReader(data), 0, 1); err != nil || puts.Load() != 2 {
		t.Fatalf("seekable PutReader whose first answer was lost = %v after %d attempts, want success after 2", err, puts.Load())
	}
	for _, key := range []string{"part/retried", "part/lost"} {
		if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get(%s) = %d bytes, %v", key, len(got), err)
		}
	}
	// Another object under the key stays ErrExists, even after a retry.
	other := append([]byte{data[0] ^ 1}, data[1:]...)
	if err := attempt("part/lost", bytes.NewReader(other), 1, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("PutReader of other bytes over an object = %v, want ErrExists", err)
	}
}

func TestS3PutReaderTooLarge(t *testing.T) {
	t.Parallel()
	front, seen := recordPuts(t)
	s := newS3Store(t, front.URL, testBucket)
	err := s.PutReader(context.Background(), "part/huge", s3MaxPutBytes+1, strings.NewReader(""))
	if err == nil || len(seen()) != 0 {
		t.Fatalf("PutReader over 5 GiB = %v after %d PUTs, want an error before any", err, len(seen()))
	}
}

// TestS3ListObjectsPages: ListObjects follows continuation tokens across pages.
func TestS3ListObjectsPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var lists atomic.Int32
	front := newS3Front(t, httptest.NewServer, func(_ http.Handler, _ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
			lists.Add(1)
		}
		return false
	})
	s := newS3Store(t, front.URL, testBucket)
	s.listPage = 2
	var want []ObjectInfo
	for i := range 5 {
		key := "part/t/0/" + string(rune('a'+i))
		mustPut(t, s, key, make([]byte, i))
		want = append(want, ObjectInfo{Key: key, Size: int64(i)})
	}
	mustPut(t, s, "seg/other", []byte("x"))
	got, err := s.ListObjects(ctx, "part/")
	if err != nil || len(got) != len(want) {
		t.Fatalf("ListObjects = %v, %v; want %v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ListObjects = %v, want %v", got, want)
		}
	}
	if n := lists.Load(); n != 3 {
		t.Fatalf("%d ListObjectsV2 requests for 5 keys in pages of 2, want 3", n)
	}
}
