package segstore

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const testBucket = "streamhouse-test"

// newS3Server starts an embedded S3 endpoint on dir, closed at cleanup.
func newS3Server(t testing.TB, dir string) *S3Server {
	t.Helper()
	srv, err := NewS3Server(S3ServerConfig{Dir: dir, Bucket: testBucket, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewS3Server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ln); err != nil {
		ln.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("S3Server.Close: %v", err)
		}
	})
	return srv
}

func testLogger(t testing.TB) hclog.Logger {
	level := hclog.Info
	if _, ok := t.(*testing.B); ok {
		level = hclog.Warn // Info lines would come between a benchmark's results
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: t.Output(), Level: level})
}

func newS3Store(t testing.TB, endpoint, bucket string) *S3 {
	t.Helper()
	s, err := NewS3(context.Background(), S3Config{
		Endpoint: endpoint, Bucket: bucket, PathStyle: true,
		AccessKeyID: "any", SecretAccessKey: "thing",
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

// s3Front is an HTTP server started in front of an embedded S3 server (closed at cleanup): it passes
// each request on to it, and keeps the X-Amz-Content-Sha256 header of the last PUT.
type s3Front struct {
	*httptest.Server
	putHash atomic.Value
}

// newS3Front starts an embedded S3 server and, with start (httptest.NewServer or NewTLSServer), a
// front to it. intercept, when not nil, sees each request first (after the PUT header is kept), with
// a proxy to the embedded server, and reports whether it answered the request itself.
func newS3Front(t *testing.T, start func(http.Handler) *httptest.Server, intercept func(proxy http.Handler, w http.ResponseWriter, r *http.Request) bool) *s3Front {
	t.Helper()
	srv := newS3Server(t, t.TempDir())
	target, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &s3Front{}
	f.Server = start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.putHash.Store(r.Header.Get("X-Amz-Content-Sha256"))
		}
		if intercept != nil && intercept(proxy, w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// lastPutHash is the X-Amz-Content-Sha256 header of the last PUT ("" before any).
func (f *s3Front) lastPutHash() string {
	h, _ := f.putHash.Load().(string)
	return h
}

func TestS3Contract(t *testing.T) {
	t.Parallel()
	testStoreContract(t, func(t *testing.T) Store {
		return newS3Store(t, newS3Server(t, t.TempDir()).Endpoint(), testBucket)
	})
}

func TestS3CheckMissingBucket(t *testing.T) {
	srv := newS3Server(t, t.TempDir())
	err := newS3Store(t, srv.Endpoint(), "no-such-bucket").Check(context.Background())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Check = %v, want ErrNotFound", err)
	}
	want := `s3: bucket "no-such-bucket" does not exist at ` + srv.Endpoint()
	if err.Error() != want {
		t.Fatalf("Check error reads %q, want %q", err, want)
	}
	// Elsewhere a missing bucket is not a missing object.
	s := newS3Store(t, srv.Endpoint(), "no-such-bucket")
	if _, err := s.Get(context.Background(), "seg/x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get from a missing bucket = %v, want an error other than ErrNotFound", err)
	}
	t.Log(err)
	if err := s.Delete(context.Background(), "seg/x"); err == nil {
		t.Fatal("Delete from a missing bucket succeeded")
	}
}

func TestS3CheckUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	s := newS3Store(t, endpoint, testBucket)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Check(ctx)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Check against a closed port succeeded")
	}
	t.Logf("after %v: %v", elapsed, err)
	want := "s3: cannot reach " + endpoint + ": connection refused"
	if err.Error() != want {
		t.Errorf("Check error reads %q, want %q", err, want)
	}
	if elapsed > 5*time.Second {
		t.Errorf("Check took %v to give up, want a few seconds at most", elapsed)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("an unreachable store must not look like a missing object")
	}
}

func TestS3CheckCancelled(t *testing.T) {
	s := newS3Store(t, newS3Server(t, t.TempDir()).Endpoint(), testBucket)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Check(ctx)
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Check = %q, want a one-line context.Canceled", err)
	}
}

// TestS3ServerSurvivesRestart: dev mode keeps its data across restarts on the same directory.
func TestS3ServerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := newS3Server(t, dir)
	obj, extents := AppendObject(nil, testChunks(3, 100))
	mustPut(t, newS3Store(t, first.Endpoint(), testBucket), "seg/persisted", obj)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s := newS3Store(t, newS3Server(t, dir).Endpoint(), testBucket)
	got, err := s.Get(ctx, "seg/persisted")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if dec, err := Decode(got); err != nil || !slices.Equal(dec, extents) {
		t.Fatalf("Decode after restart = %v, %v", dec, err)
	}
	e := extents[1]
	part, err := s.GetRange(ctx, "seg/persisted", e.Pos, int64(e.Len))
	if err != nil || VerifyExtent(part, e.CRC) != nil {
		t.Fatalf("GetRange of extent 1 after restart: %v", err)
	}
	if err := s.Put(ctx, "seg/persisted", obj); !errors.Is(err, ErrExists) {
		t.Fatalf("Put over a persisted object = %v, want ErrExists", err)
	}
}

func TestS3ServerLifecycle(t *testing.T) {
	if _, err := NewS3Server(S3ServerConfig{Bucket: testBucket}); err == nil {
		t.Error("NewS3Server without Dir succeeded")
	}
	if _, err := NewS3Server(S3ServerConfig{Dir: t.TempDir(), Bucket: "Not_A_Bucket"}); err == nil {
		t.Error("NewS3Server with an invalid bucket name succeeded")
	}
	srv, err := NewS3Server(S3ServerConfig{Dir: t.TempDir(), Bucket: testBucket})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Endpoint() != "" {
		t.Errorf("Endpoint before Start = %q, want empty", srv.Endpoint())
	}
	if err := srv.Close(); err != nil { // never started
		t.Errorf("Close before Start: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Start(ln); err == nil {
		t.Error("Start after Close succeeded")
	}

	running := newS3Server(t, t.TempDir())
	if err := running.Start(ln); err == nil {
		t.Error("second Start succeeded")
	}
	if err := running.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running.done:
	default:
		t.Fatal("Close returned before the serving goroutine ended")
	}
}

func TestNewS3Validate(t *testing.T) {
	for _, cfg := range []S3Config{
		{},
		{Bucket: "b", AccessKeyID: "only-id"},
		{Bucket: "b", Endpoint: "127.0.0.1:9000"},
		{Bucket: "b", Endpoint: "ftp://host"},
	} {
		if _, err := NewS3(context.Background(), cfg); err == nil {
			t.Errorf("NewS3(%+v) succeeded", cfg)
		}
	}
}

// TestS3PutRetryAfterLostResponse: the first attempt stores the object but its response never
// arrives; the SDK retries, meets If-None-Match, and Put must still report success because the
// object holds exactly our bytes. A different object under the key stays ErrExists.
func TestS3PutRetryAfterLostResponse(t *testing.T) {
	var dropped atomic.Int32
	front := newS3Front(t, httptest.NewServer, func(proxy http.Handler, w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && dropped.Add(1) == 1 {
			proxy.ServeHTTP(httptest.NewRecorder(), r) // the PUT lands...
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // ...and the answer is lost
			}
			return true
		}
		return false
	})

	s := newS3Store(t, front.URL, testBucket)
	// In parts, as the agent sends objects: the retry rewinds them (partsReader.Seek).
	if err := s.Put(context.Background(), "seg/retried", []byte("pay"), nil, []byte("load")); err != nil {
		t.Fatalf("Put whose first response was lost = %v, want success", err)
	}
	if dropped.Load() < 2 {
		t.Fatalf("the SDK made %d PUT attempts, want a retry", dropped.Load())
	}
	if got := front.lastPutHash(); got != "UNSIGNED-PAYLOAD" { // loopback: the payload is not hashed
		t.Errorf("PUT to loopback sent X-Amz-Content-Sha256 %q, want UNSIGNED-PAYLOAD", got)
	}
	if got, err := s.Get(context.Background(), "seg/retried"); err != nil || string(got) != "payload" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := s.Put(context.Background(), "seg/retried", []byte("other")); !errors.Is(err, ErrExists) {
		t.Fatalf("Put of other bytes = %v, want ErrExists", err)
	}
}

// TestS3OverTLS goes through an HTTPS front to the embedded server: over TLS, Put sends
// UNSIGNED-PAYLOAD rather than hashing the object (as it does to a loopback endpoint: see
// TestS3PayloadSigning).
func TestS3OverTLS(t *testing.T) {
	front := newS3Front(t, httptest.NewTLSServer, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", caFile) // read by NewS3's config.LoadDefaultConfig

	s := newS3Store(t, front.URL, testBucket)
	mustPut(t, s, "seg/tls", []byte("over tls"))
	if got := front.lastPutHash(); got != "UNSIGNED-PAYLOAD" {
		t.Errorf("PUT over TLS sent X-Amz-Content-Sha256 %q, want UNSIGNED-PAYLOAD", got)
	}
	if got, err := s.Get(context.Background(), "seg/tls"); err != nil || string(got) != "over tls" {
		t.Fatalf("Get over TLS = %q, %v", got, err)
	}
}

// TestS3CustomCA trusts a private CA given as S3Config.CACertFile, and without it refuses the
// endpoint's certificate.
func TestS3CustomCA(t *testing.T) {
	front := newS3Front(t, httptest.NewTLSServer, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := S3Config{Endpoint: front.URL, Bucket: testBucket, PathStyle: true, AccessKeyID: "a", SecretAccessKey: "b"}
	untrusting, err := NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := untrusting.Put(context.Background(), "seg/x", []byte("x")); err == nil {
		t.Fatal("an endpoint with a certificate of an unknown CA was trusted")
	}
	cfg.CACertFile = caFile
	s, err := NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "seg/ca", []byte("private ca"))
	cfg.CACertFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewS3(context.Background(), cfg); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

// TestS3PayloadSigning: over plain HTTP, Put hashes and signs the payload, except to a loopback
// endpoint, whose traffic never leaves the host.
func TestS3PayloadSigning(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		unsigned bool
	}{
		{"http://127.0.0.1:9000", true},
		{"http://[::1]:9000", true},
		{"http://localhost:9000", true},
		{"http://10.0.0.7:9000", false},
		{"http://minio:9000", false},
		{"https://minio:9000", true},
		{"", true},
	} {
		if got := isLoopback(tc.endpoint) || tc.endpoint == "" || strings.HasPrefix(tc.endpoint, "https://"); got != tc.unsigned {
			t.Errorf("%q: unsigned %v, want %v", tc.endpoint, got, tc.unsigned)
		}
		s, err := NewS3(context.Background(), S3Config{Endpoint: tc.endpoint, Bucket: testBucket, AccessKeyID: "a", SecretAccessKey: "b"})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(s.putOpts) > 0; got != tc.unsigned {
			t.Errorf("%q: Put sends UNSIGNED-PAYLOAD: %v, want %v", tc.endpoint, got, tc.unsigned)
		}
	}

	// End to end: a PUT to the embedded server on 127.0.0.1 is not hashed.
	front := newS3Front(t, httptest.NewServer, nil)
	s := newS3Store(t, front.URL, testBucket)
	mustPut(t, s, "seg/loopback", []byte("on loopback"))
	if got := front.lastPutHash(); got != "UNSIGNED-PAYLOAD" {
		t.Errorf("PUT to loopback sent X-Amz-Content-Sha256 %q, want UNSIGNED-PAYLOAD", got)
	}
	if got, err := s.Get(context.Background(), "seg/loopback"); err != nil || string(got) != "on loopback" {
		t.Fatalf("Get = %q, %v", got, err)
	}
}
