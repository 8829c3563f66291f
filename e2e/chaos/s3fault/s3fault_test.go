package s3fault

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/segstore"
)

const testTimeout = 10 * time.Second

// newLayer puts a layer in front of a server that answers 200 "ok" and counts what reaches it.
func newLayer(t *testing.T, seed uint64) (*Layer, *httptest.Server, *atomic.Int64) {
	t.Helper()
	var reached atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	l, err := New(backend.URL, seed)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(l)
	t.Cleanup(front.Close)
	return l, front, &reached
}

func get(t *testing.T, ctx context.Context, url string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/bucket/key", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestErrorsAnswerAsS3(t *testing.T) {
	for _, tc := range []struct {
		kind   Kind
		status int
		code   string
	}{
		{SlowDown, 503, "<Code>SlowDown</Code>"},
		{InternalError, 500, "<Code>InternalError</Code>"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			l, front, reached := newLayer(t, 1)
			if err := l.Set(Rule{Share: 1, Kind: tc.kind}); err != nil {
				t.Fatal(err)
			}
			status, body, err := get(t, context.Background(), front.URL)
			if err != nil || status != tc.status || !strings.Contains(body, tc.code) {
				t.Fatalf("got %d %q %v, want %d with %s", status, body, err, tc.status, tc.code)
			}
			if reached.Load() != 0 {
				t.Errorf("a failed request reached the store")
			}
			if got := l.Injected()[tc.kind]; got != 1 {
				t.Errorf("Injected()[%v] = %d, want 1", tc.kind, got)
			}
			l.Clear()
			if status, _, _ := get(t, context.Background(), front.URL); status != 200 || reached.Load() != 1 {
				t.Errorf("after Clear: %d, %d requests reached the store; want 200, 1", status, reached.Load())
			}
		})
	}
}

// The same seed picks the same requests; the share is roughly kept.
func TestShareIsSeeded(t *testing.T) {
	pattern := func(seed uint64) string {
		l, front, _ := newLayer(t, seed)
		if err := l.Set(Rule{Share: 0.3, Kind: InternalError}); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for range 200 {
			status, _, err := get(t, context.Background(), front.URL)
			if err != nil {
				t.Fatal(err)
			}
			if status == http.StatusInternalServerError {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := pattern(7), pattern(7)
	if a != b {
		t.Fatalf("seed 7 picked different requests:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n < 30 || n > 90 {
		t.Errorf("%d of 200 requests failed with share 0.3", n)
	}
}

func TestMethodsFilter(t *testing.T) {
	l, front, _ := newLayer(t, 1)
	if err := l.Set(Rule{Share: 1, Kind: SlowDown, Methods: []string{http.MethodPut}}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := get(t, context.Background(), front.URL); status != 200 {
		t.Errorf("GET got %d under a PUT-only rule", status)
	}
	req, _ := http.NewRequest(http.MethodPut, front.URL+"/bucket/key", strings.NewReader("data"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("PUT got %d, want 503", resp.StatusCode)
	}
}

func TestStallDelaysThenPasses(t *testing.T) {
	const stall = 100 * time.Millisecond
	l, front, reached := newLayer(t, 1)
	if err := l.Set(Rule{Share: 1, Kind: Stall, Stall: stall}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	status, body, err := get(t, context.Background(), front.URL)
	if err != nil || status != 200 || body != "ok" {
		t.Fatalf("got %d %q %v", status, body, err)
	}
	if took := time.Since(start); took < stall {
		t.Errorf("stalled request took %v, want at least %v", took, stall)
	}
	if reached.Load() != 1 {
		t.Errorf("the stalled request did not reach the store")
	}
}

// A client that gives up during a stall never reaches the store.
func TestStallAbandoned(t *testing.T) {
	l, front, reached := newLayer(t, 1)
	if err := l.Set(Rule{Share: 1, Kind: Stall, Stall: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := get(t, ctx, front.URL); err == nil {
		t.Fatal("a request stalled for an hour answered")
	}
	front.CloseClientConnections()
	if reached.Load() != 0 {
		t.Errorf("an abandoned request reached the store")
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []Rule{{Share: -0.1}, {Share: 1.5}, {Share: 0.5, Kind: Stall}} {
		if r.Validate() == nil {
			t.Errorf("%+v: no error", r)
		}
	}
	if _, err := New("not a url", 1); err == nil {
		t.Error("New accepted a target that is not a URL")
	}
}

// The layer is transparent to StreamHouse's own S3 client in front of the embedded S3 endpoint, and
// a SlowDown storm reaches that client as an error, not a hang.
func TestSegstoreThroughLayer(t *testing.T) {
	srv, err := segstore.NewS3Server(segstore.S3ServerConfig{Dir: t.TempDir(), Bucket: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l, err := New(srv.Endpoint(), 1)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(l)
	t.Cleanup(front.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	store, err := segstore.NewS3(ctx, segstore.S3Config{Endpoint: front.URL, Bucket: "chaos", PathStyle: true,
		AccessKeyID: "chaos", SecretAccessKey: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("segment bytes")
	if err := store.Put(ctx, "a", data); err != nil {
		t.Fatalf("put through a clear layer: %v", err)
	}
	if got, err := store.Get(ctx, "a"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q, %v", got, err)
	}
	if err := l.Set(Rule{Share: 1, Kind: SlowDown}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "b", data); err == nil {
		t.Fatal("put succeeded while every request answered SlowDown")
	}
	if l.Injected()[SlowDown] == 0 {
		t.Error("no SlowDown counted")
	}
}
