package segstore

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/johannesboyne/gofakes3"
)

// S3ServerConfig configures an embedded S3 endpoint.
type S3ServerConfig struct {
	Dir    string       // where buckets and objects live; created if missing; one server at a time
	Bucket string       // created if missing
	Logger hclog.Logger // optional; gofakes3's request log goes to it at Debug
}

// Validate reports the first problem with cfg.
func (cfg S3ServerConfig) Validate() error {
	if cfg.Dir == "" {
		return errors.New("s3 server: no directory given")
	}
	if err := gofakes3.ValidateBucketName(cfg.Bucket); err != nil {
		return fmt.Errorf("s3 server: bucket %q: %w", cfg.Bucket, err)
	}
	return nil
}

// S3Server is an S3-compatible endpoint on a local directory, for dev mode and tests: the S3 store
// talks to it exactly as to AWS. gofakes3 serves the S3 API; its backend here (dirBackend) keeps
// each object in a file of its own, published by rename so that no reader sees part of one, with
// the MD5 that gofakes3 computed while receiving it in a small sidecar file, so that objects are
// hashed once. It accepts any credentials and supports If-None-Match puts, ranged GETs and
// paginated listings. Data survives a restart on the same Dir (including a Dir written by earlier
// versions, which used gofakes3's s3afero backend in the same layout); writes are not fsynced.
type S3Server struct {
	cfg     S3ServerConfig
	logger  hclog.Logger
	backend *dirBackend
	faker   *gofakes3.GoFakeS3

	mu      sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	srv     *http.Server
	done    chan struct{} // closed when the serving goroutine returns
}

// NewS3Server validates cfg and creates Dir. It starts nothing.
func NewS3Server(cfg S3ServerConfig) (*S3Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("s3server")
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3 server: %w", err)
	}
	backend, err := newDirBackend(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("s3 server: %s: %w", cfg.Dir, err)
	}
	faker := gofakes3.New(backend,
		gofakes3.WithLogger(hclogAdapter{logger}),
		gofakes3.WithoutVersioning(),
	)
	return &S3Server{cfg: cfg, logger: logger, backend: backend, faker: faker, done: make(chan struct{})}, nil
}

// Start creates the bucket if missing and serves on ln in a goroutine that Close waits for. Once
// Start succeeds the server owns ln; if it fails, ln is still the caller's to close.
func (s *S3Server) Start(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("s3 server: already started or closed")
	}
	if err := s.ensureBucket(); err != nil {
		return err
	}
	s.started, s.ln = true, ln
	s.srv = &http.Server{
		Handler:           s.faker.Server(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(s.logger.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}), "", 0),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("serving stopped", "error", err)
		}
	}()
	s.logger.Info("serving", "endpoint", s.endpointLocked(), "dir", s.cfg.Dir, "bucket", s.cfg.Bucket)
	return nil
}

func (s *S3Server) ensureBucket() error {
	exists, err := s.backend.BucketExists(s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("s3 server: bucket %q: %w", s.cfg.Bucket, err)
	}
	if exists {
		return nil
	}
	if err := s.backend.CreateBucket(s.cfg.Bucket); err != nil {
		return fmt.Errorf("s3 server: creating bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}

// Endpoint returns "http://" + the listener's address, with an unspecified IP (listening on all
// interfaces) replaced by loopback so that the result can be dialled. Empty before Start.
func (s *S3Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpointLocked()
}

func (s *S3Server) endpointLocked() string {
	if s.ln == nil {
		return ""
	}
	addr := s.ln.Addr().String()
	if tcp, ok := s.ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	return "http://" + addr
}

// Close stops the server and waits for its goroutine. It is safe to call twice.
//
// Order: Shutdown stops accepting, closes idle connections and waits a little for requests in
// flight, so that a Put under way either lands or fails cleanly; Close then cuts whatever is left;
// finally the serving goroutine is waited for.
func (s *S3Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.doneIfStarted()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	if err != nil {
		return fmt.Errorf("s3 server: close: %w", err)
	}
	return nil
}

// doneIfStarted returns a channel that is closed once the serving goroutine (if any) has returned.
func (s *S3Server) doneIfStarted() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.done
}

// hclogAdapter routes gofakes3's log to hclog at Debug: it logs every request at Info, which is
// noise for StreamHouse's operators.
type hclogAdapter struct{ l hclog.Logger }

func (a hclogAdapter) Print(level gofakes3.LogLevel, v ...any) {
	if a.l.IsDebug() {
		a.l.Debug(fmt.Sprint(v...), "gofakes3_level", string(level))
	}
}
