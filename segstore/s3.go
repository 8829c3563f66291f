package segstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DefaultS3Region is used when S3Config.Region is empty.
const DefaultS3Region = "us-east-1"

// Client-side retries are few and short: callers (the flush pipeline, the fetch path) have their
// own deadlines and retry policies, and an unreachable endpoint must be reported within seconds,
// not after the SDK's default 20s backoffs.
const (
	s3MaxAttempts = 3
	s3MaxBackoff  = time.Second
	s3DialTimeout = 3 * time.Second

	s3MaxIdleConnsPerHost = 128

	// s3MaxPutBytes is S3's limit on one PUT; larger objects need a multipart upload.
	s3MaxPutBytes = 5 << 30
	// s3ListPage is ListObjectsV2's page: S3's maximum.
	s3ListPage = 1000
)

// S3Config configures an S3 (or S3-compatible) store.
type S3Config struct {
	Endpoint  string // empty = AWS default resolution; else e.g. http://127.0.0.1:9000
	Bucket    string
	Region    string // default "us-east-1"
	PathStyle bool
	// Optional static credentials; empty = the standard AWS credential chain.
	AccessKeyID, SecretAccessKey string
	// CACertFile is a PEM file of the CA certificates to trust for an https:// endpoint (a private
	// CA); empty: the system's roots, or AWS_CA_BUNDLE.
	CACertFile string
}

// Validate reports the first problem with cfg.
func (cfg S3Config) Validate() error {
	if cfg.Bucket == "" {
		return errors.New("s3: no bucket given")
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return errors.New("s3: give both an access key id and a secret access key, or neither")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("s3: endpoint %q is not an http:// or https:// URL", cfg.Endpoint)
		}
	}
	return nil
}

// S3 is a Store on an S3 bucket.
type S3 struct {
	client *s3.Client
	bucket string
	region string
	where  string // the endpoint, for error messages
	// putOpts are per-Put client options: over TLS or to a loopback endpoint (dev mode's embedded
	// one), UNSIGNED-PAYLOAD instead of hashing every object with SHA-256 before sending it (TLS
	// protects the bytes in transit, loopback traffic never leaves the host, and every extent carries
	// its own CRC). Hashing was half of a dev agent's CPU.
	putOpts []func(*s3.Options)
	// listPage is the keys per ListObjectsV2 page (s3ListPage; tests make it small).
	listPage int32
}

var _ Store = (*S3)(nil)

// NewS3 validates cfg and builds the client. It does no network I/O.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	awsCfg, err := loadAWSConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	st := &S3{client: client, bucket: cfg.Bucket, region: cfg.Region, where: cfg.Endpoint, listPage: s3ListPage}
	if st.where == "" {
		st.where = "AWS S3 (" + cfg.Region + ")"
	}
	if cfg.Endpoint == "" || strings.HasPrefix(cfg.Endpoint, "https://") || isLoopback(cfg.Endpoint) {
		st.putOpts = []func(*s3.Options){s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)}
	}
	return st, nil
}

// isLoopback reports whether endpoint's host is a loopback address or "localhost".
func isLoopback(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if h := u.Hostname(); h == "localhost" {
		return true
	} else if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback()
	}
	return false
}

// loadAWSConfig resolves credentials and settings the standard AWS way (environment, shared files),
// overridden by cfg.
func loadAWSConfig(ctx context.Context, cfg S3Config) (aws.Config, error) {
	httpClient := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = s3DialTimeout
	}).WithTransportOptions(func(t *http.Transport) {
		// The fetch path issues many concurrent ranged GETs to one endpoint; the SDK's default
		// of 10 idle connections per host would churn connections.
		t.MaxIdleConnsPerHost = s3MaxIdleConnsPerHost
	})
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		// Checksums only where an API requires them: S3-compatible stores reject or mishandle the
		// trailing checksums that newer SDKs send by default.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithRetryer(newS3Retryer),
		config.WithHTTPClient(httpClient),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return aws.Config{}, fmt.Errorf("s3: CA certificates: %w", err)
		}
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("s3: loading AWS configuration: %w", err)
	}
	return awsCfg, nil
}

func newS3Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = s3MaxAttempts
		o.MaxBackoff = s3MaxBackoff
		// No client-side retry quota: after a burst of failures it fails requests with a
		// "retry quota exceeded" error that says nothing about the store.
		o.RateLimiter = ratelimit.None
	})
}

// Put implements Writer with If-None-Match: "*".
func (s *S3) Put(ctx context.Context, key string, data ...[]byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	var attempts atomic.Int32
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          newPartsReader(data),
		ContentLength: aws.Int64(parts(data).size()),
		IfNoneMatch:   aws.String("*"),
	}, append(slices.Clip(s.putOpts), countAttempts(&attempts))...)
	err = s.mapErr(OpPut, key, err)
	if errors.Is(err, ErrExists) && attempts.Load() > 1 && s.holds(ctx, key, parts(data).size(), newPartsReader(data)) {
		// An earlier attempt of this very call stored the object but its response was lost; the
		// retry then hit our own write.
		return nil
	}
	return err
}

// PutReader implements Writer with one PutObject of Content-Length size whose body is read from r
// as the request is sent. Unless r can seek, the body cannot be read twice: it is sent
// UNSIGNED-PAYLOAD whatever the endpoint (signing needs its SHA-256 before the request; the
// partition segments streamed this way carry a CRC for every block and their footer), and the
// request is made once: a failure is the caller's to retry (Writer.PutReader). A seekable r is sent
// as Put sends parts, signed where Put signs, and retried.
func (s *S3) PutReader(ctx context.Context, key string, size int64, r io.Reader) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := validateSize(key, size); err != nil {
		return err
	}
	if size > s3MaxPutBytes {
		return fmt.Errorf("s3: put_stream %q: %d bytes exceed the %d of one PUT", key, size, int64(s3MaxPutBytes))
	}
	var attempts atomic.Int32
	opts := []func(*s3.Options){countAttempts(&attempts)}
	e := newExactReader(ctx, r, size)
	var body io.Reader = e
	seeker, seekable := newExactReadSeeker(ctx, r, size)
	if seekable {
		e, body = seeker.exactReader, seeker
		opts = append(opts, s.putOpts...)
	} else {
		opts = append(opts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware), noRetries)
	}
	if size == 0 {
		// The client sends no body for a zero length, so it would never read r's.
		if err := e.atEnd(); err != io.EOF {
			return fmt.Errorf("s3: put_stream %q: %w", key, err)
		}
		body = nil
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
	}, opts...)
	if err != nil && e.failure() != nil {
		return fmt.Errorf("s3: put_stream %q: %w", key, e.failure())
	}
	err = s.mapErr(OpPutStream, key, err)
	if errors.Is(err, ErrExists) && attempts.Load() > 1 && seekable && rewind(seeker) && s.holds(ctx, key, size, seeker) {
		return nil // as in Put: our own earlier attempt landed
	}
	return err
}

// noRetries makes a request once.
func noRetries(o *s3.Options) { o.Retryer = aws.NopRetryer{} }

// rewind seeks r back to its start.
func rewind(r io.Seeker) bool {
	_, err := r.Seek(0, io.SeekStart)
	return err == nil
}

// countAttempts adds a middleware after the retry loop, so it runs once per attempt.
func countAttempts(n *atomic.Int32) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("segstoreCountAttempts",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
					middleware.FinalizeOutput, middleware.Metadata, error,
				) {
					n.Add(1)
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

// holds reports whether key holds exactly the size bytes of content, by ETag (the MD5 of a
// single-part upload without SSE-KMS). Any doubt answers false, which keeps ErrExists.
func (s *S3) holds(ctx context.Context, key string, size int64, content io.Reader) bool {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil || out.ETag == nil || out.ContentLength == nil || *out.ContentLength != size {
		return false
	}
	sum := md5.New()
	if _, err := io.Copy(sum, content); err != nil {
		return false
	}
	return strings.Trim(*out.ETag, `"`) == hex.EncodeToString(sum.Sum(nil))
}

// Get implements Reader.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.mapErr(OpGet, key, err)
	}
	defer out.Body.Close()
	var buf []byte
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf = make([]byte, n)
		_, err = io.ReadFull(out.Body, buf)
	} else {
		buf, err = io.ReadAll(out.Body)
	}
	if err != nil {
		return nil, s.mapErr(OpGet, key, err)
	}
	return buf, nil
}

// GetRange implements Reader with a ranged GET ("bytes=a-b").
func (s *S3) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := validateRange(key, off, length); err != nil {
		return nil, err
	}
	if err := validateKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1)),
	})
	if err != nil {
		if err = s.mapErr(OpGetRange, key, err); errors.Is(err, ErrCorrupt) { // 416
			return nil, shortObject(key, off, length, -1)
		}
		return nil, err
	}
	defer out.Body.Close()
	// A server that ignored the range would hand back bytes from offset 0.
	if cr := aws.ToString(out.ContentRange); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(off, 10)+"-") {
		return nil, fmt.Errorf("s3: get_range %q: server answered range %q for bytes=%d-%d", key, cr, off, off+length-1)
	}
	size := objectSize(aws.ToString(out.ContentRange))
	if out.ContentLength != nil && *out.ContentLength < length {
		return nil, shortObject(key, off, length, size)
	}
	buf := make([]byte, length)
	// A body cut short here is a dropped connection, not a short object: Content-Length said
	// otherwise.
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return nil, s.mapErr(OpGetRange, key, err)
	}
	return buf, nil
}

// objectSize reads the total from a Content-Range "bytes a-b/size", or -1.
func objectSize(contentRange string) int64 {
	_, total, ok := strings.Cut(contentRange, "/")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Delete implements Store. S3 answers 204 for an absent key too.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err = s.mapErr(OpDelete, key, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	objects, err := s.ListObjects(ctx, prefix)
	return objectKeys(objects), err
}

// ListObjects implements Store, a ListObjectsV2 page of up to 1,000 keys at a time, following
// continuation tokens.
func (s *S3) ListObjects(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(s.listPage),
	})
	var objects []ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.mapErr(OpList, prefix, err)
		}
		for _, o := range page.Contents {
			objects = append(objects, ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return objects, nil
}

// Check implements Store with HeadBucket.
func (s *S3) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	return s.mapErr(OpCheck, "", err)
}

// s3Error is a one-line message that still unwraps to a sentinel and to the SDK's error chain
// (context errors, net errors), whose own text is long and repeats the operation.
type s3Error struct {
	msg  string
	errs []error
}

func (e *s3Error) Error() string   { return e.msg }
func (e *s3Error) Unwrap() []error { return e.errs }

// mapErr turns an SDK error into a short message and, where callers act on it, a sentinel.
func (s *S3) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	subject := fmt.Sprintf("s3: %s %q", op, key)
	if op == OpCheck {
		subject = fmt.Sprintf("s3: bucket %q at %s", s.bucket, s.where)
	}
	if reason, ok := unreachable(err); ok {
		return &s3Error{fmt.Sprintf("s3: cannot reach %s: %s", s.where, reason), []error{err}}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &s3Error{fmt.Sprintf("%s: %v", subject, ctxReason(err)), []error{err}}
	}
	status, code, msg := apiError(err)
	switch {
	case code == "NoSuchBucket" || (op == OpCheck && status == 404):
		return &s3Error{fmt.Sprintf("s3: bucket %q does not exist at %s", s.bucket, s.where), bucketMissing(op, err)}
	case code == "NoSuchKey" || status == 404:
		return &s3Error{subject + ": object not found", []error{ErrNotFound, err}}
	case code == "PreconditionFailed" || code == "ConditionalRequestConflict" || status == 412 || ((op == OpPut || op == OpPutStream) && status == 409):
		return &s3Error{subject + ": object already exists", []error{ErrExists, err}}
	case code == "InvalidRange" || status == 416:
		return &s3Error{fmt.Sprintf("%s: range is past the end of the object", subject), []error{ErrCorrupt, err}}
	case status == 403:
		return &s3Error{fmt.Sprintf("s3: access denied to bucket %q at %s%s", s.bucket, s.where, detail(code, msg)), []error{err}}
	case status == 301:
		return &s3Error{fmt.Sprintf("s3: bucket %q at %s is not in region %q%s", s.bucket, s.where, s.region, detail(code, msg)), []error{err}}
	case status != 0:
		return &s3Error{fmt.Sprintf("%s: HTTP %d%s", subject, status, detail(code, msg)), []error{err}}
	}
	return fmt.Errorf("%s: %w", subject, err)
}

// bucketMissing is ErrNotFound for Check, whose callers ask "is the store there?"; elsewhere a
// missing bucket is not a missing object: Delete must not succeed on it, nor a reader conclude the
// object is gone.
func bucketMissing(op string, err error) []error {
	if op == OpCheck {
		return []error{ErrNotFound, err}
	}
	return []error{err}
}

func detail(code, msg string) string {
	switch {
	case code != "" && msg != "":
		return " (" + code + ": " + msg + ")"
	case code != "":
		return " (" + code + ")"
	}
	return ""
}

// apiError extracts the HTTP status and S3 error code and message, when there was a response.
func apiError(err error) (status int, code, msg string) {
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code, msg = apiErr.ErrorCode(), apiErr.ErrorMessage()
	}
	return status, code, msg
}

// unreachable reports whether err is a failure to connect, and the reason in a few words
// ("connection refused", "i/o timeout", "no such host").
func unreachable(err error) (string, bool) {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error(), true
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		return "", false
	}
	var sysErr *os.SyscallError
	if errors.As(opErr.Err, &sysErr) {
		return sysErr.Err.Error(), true
	}
	return opErr.Err.Error(), true
}

// ctxReason names the context error inside err.
func ctxReason(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return context.Canceled
}
