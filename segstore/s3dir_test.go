package segstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// The embedded endpoint's backend. Through the S3 client, TestS3Contract and the other TestS3*
// tests run against it too.

// newTestBackend opens a backend on a new directory, with testBucket created.
func newTestBackend(t *testing.T) (*dirBackend, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := newDirBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func md5Of(data []byte) []byte {
	sum := md5.Sum(data)
	return sum[:]
}

func etagOf(data []byte) string { return gofakes3.FormatETag(md5Of(data)) }

func wantCode(t *testing.T, what string, err error, code gofakes3.ErrorCode) {
	t.Helper()
	if !gofakes3.HasErrorCode(err, code) {
		t.Errorf("%s = %v, want %s", what, err, code)
	}
}

func mustPutObject(t *testing.T, b *dirBackend, key string, data []byte) {
	t.Helper()
	if _, err := b.PutObject(testBucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatalf("PutObject(%q): %v", key, err)
	}
}

func readObject(t *testing.T, obj *gofakes3.Object) []byte {
	t.Helper()
	defer obj.Contents.Close()
	data, err := io.ReadAll(obj.Contents)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// summingReader offers a Sum, as gofakes3's hashingReader does, that is not the MD5 of its bytes:
// an object stored with that sum proves that the backend did not hash the bytes itself.
type summingReader struct {
	io.Reader
	sum []byte
}

func (r *summingReader) Sum([]byte) []byte { return r.sum }

func TestDirBackendHashesOnce(t *testing.T) {
	b, _ := newTestBackend(t)
	data := []byte("segment bytes")
	sentinel := bytes.Repeat([]byte{0xab}, md5.Size)
	for _, tc := range []struct {
		key   string
		input io.Reader
		want  []byte
	}{
		{"from-reader", &summingReader{bytes.NewReader(data), sentinel}, sentinel},
		{"computed", bytes.NewReader(data), md5Of(data)},
		// A Sum that is not 16 bytes is not an MD5: the backend computes one.
		{"not-md5", &summingReader{bytes.NewReader(data), make([]byte, 32)}, md5Of(data)},
	} {
		if _, err := b.PutObject(testBucket, tc.key, nil, tc.input, int64(len(data)), nil); err != nil {
			t.Fatalf("PutObject(%q): %v", tc.key, err)
		}
		obj, err := b.HeadObject(testBucket, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(obj.Hash, tc.want) || obj.Size != int64(len(data)) {
			t.Errorf("%s: hash %x, size %d; want %x, %d", tc.key, obj.Hash, obj.Size, tc.want, len(data))
		}
	}
}

func TestDirBackendPutChecksSize(t *testing.T) {
	b, dir := newTestBackend(t)
	for _, tc := range []struct {
		data string
		size int64
	}{{"short", 10}, {"longer than said", 4}, {"", 1}} {
		_, err := b.PutObject(testBucket, "k", nil, strings.NewReader(tc.data), tc.size, nil)
		wantCode(t, fmt.Sprintf("PutObject of %d bytes as %d", len(tc.data), tc.size), err, gofakes3.ErrIncompleteBody)
	}
	if _, err := b.HeadObject(testBucket, "k"); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Errorf("HeadObject after failed puts = %v, want NoSuchKey", err)
	}
	assertNoTempFiles(t, dir)
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"buckets", "metadata"} {
		entries, _ := os.ReadDir(filepath.Join(dir, d, testBucket, tmpDirName))
		for _, e := range entries {
			t.Errorf("temporary file left behind: %s/%s", d, e.Name())
		}
	}
}

func TestDirBackendPutConditions(t *testing.T) {
	b, _ := newTestBackend(t)
	star := "*"
	ifNoneMatch := &gofakes3.PutConditions{IfNoneMatch: &star}
	put := func(key, data string, c *gofakes3.PutConditions) error {
		_, err := b.PutObject(testBucket, key, nil, strings.NewReader(data), int64(len(data)), c)
		return err
	}
	if err := put("k", "first", ifNoneMatch); err != nil {
		t.Fatalf("If-None-Match put of a new key: %v", err)
	}
	// The error that S3.Put maps to ErrExists.
	wantCode(t, "If-None-Match put of an existing key", put("k", "second", ifNoneMatch), gofakes3.ErrPreconditionFailed)

	good, bad := etagOf([]byte("first")), etagOf([]byte("other"))
	wantCode(t, "If-Match put with another ETag", put("k", "second", &gofakes3.PutConditions{IfMatch: &bad}), gofakes3.ErrPreconditionFailed)
	wantCode(t, "If-Match put of a missing key", put("missing", "x", &gofakes3.PutConditions{IfMatch: &good}), gofakes3.ErrPreconditionFailed)
	if err := put("k", "second", &gofakes3.PutConditions{IfMatch: &good}); err != nil {
		t.Fatalf("If-Match put with the current ETag: %v", err)
	}
	obj, err := b.GetObject(testBucket, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readObject(t, obj); string(got) != "second" {
		t.Fatalf("after the If-Match put, k holds %q", got)
	}
}

// barrierReader returns its data, then at EOF waits until every reader sharing wg is there too, so
// that all the PUTs reading them contend for the publishing step at once.
type barrierReader struct {
	r    io.Reader
	wg   *sync.WaitGroup
	once sync.Once
}

func (r *barrierReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		r.once.Do(func() { r.wg.Done(); r.wg.Wait() })
	}
	return n, err
}

// TestDirBackendIfNoneMatchRace: PUTs of one key with If-None-Match: *, all of whose data is written
// before any is published: exactly one wins, and the object holds the winner's bytes.
func TestDirBackendIfNoneMatchRace(t *testing.T) {
	b, dir := newTestBackend(t)
	const writers = 16
	var barrier, done sync.WaitGroup
	barrier.Add(writers)
	star := "*"
	errs := make([]error, writers)
	for w := range writers {
		done.Go(func() {
			data := fmt.Sprintf("writer %d", w)
			_, errs[w] = b.PutObject(testBucket, "seg/contended", nil,
				&barrierReader{r: strings.NewReader(data), wg: &barrier}, int64(len(data)), &gofakes3.PutConditions{IfNoneMatch: &star})
		})
	}
	done.Wait()
	winner := -1
	for w, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, w)
		case err == nil:
			winner = w
		default:
			wantCode(t, fmt.Sprintf("writer %d's put", w), err, gofakes3.ErrPreconditionFailed)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	obj, err := b.GetObject(testBucket, "seg/contended", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("writer %d", winner)
	if got := readObject(t, obj); string(got) != want || !bytes.Equal(obj.Hash, md5Of([]byte(want))) {
		t.Fatalf("stored %q (hash %x), but writer %d won", got, obj.Hash, winner)
	}
	assertNoTempFiles(t, dir)
}

func TestDirBackendRejectsEscapingKeys(t *testing.T) {
	b, dir := newTestBackend(t)
	for _, key := range []string{
		"", "../x", "../../x", "/abs", "/", "a/../../x", "a/..", "..", ".", "a/./b", "a//b", "a/",
		tmpDirName + "/x", "nul\x00byte",
	} {
		_, err := b.PutObject(testBucket, key, nil, strings.NewReader("x"), 1, nil)
		wantCode(t, fmt.Sprintf("PutObject(%q)", key), err, gofakes3.ErrInvalidArgument)
		if err != nil && !strings.Contains(err.Error(), "is not supported by this endpoint") {
			t.Errorf("PutObject(%q) error %q does not say why", key, err)
		}
		_, err = b.GetObject(testBucket, key, nil)
		wantCode(t, fmt.Sprintf("GetObject(%q)", key), err, gofakes3.ErrInvalidArgument)
		_, err = b.HeadObject(testBucket, key)
		wantCode(t, fmt.Sprintf("HeadObject(%q)", key), err, gofakes3.ErrInvalidArgument)
		_, err = b.DeleteObject(testBucket, key)
		wantCode(t, fmt.Sprintf("DeleteObject(%q)", key), err, gofakes3.ErrInvalidArgument)
	}
	// Names that are not bucket names name no bucket, whatever they would resolve to.
	for _, bucket := range []string{"..", ".", "buckets/..", "a/b"} {
		if ok, err := b.BucketExists(bucket); ok || err != nil {
			t.Errorf("BucketExists(%q) = %v, %v", bucket, ok, err)
		}
		_, err := b.PutObject(bucket, "x", nil, strings.NewReader("x"), 1, nil)
		wantCode(t, fmt.Sprintf("PutObject in bucket %q", bucket), err, gofakes3.ErrNoSuchBucket)
	}
	assertOnly(t, dir, "buckets", "metadata")
	if keys := listAll(t, b, gofakes3.Prefix{}, 1000); len(keys) != 0 {
		t.Errorf("stored: %q", keys)
	}
}

// assertOnly checks that dir holds exactly the entries names.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// TestS3ServerRejectsEscapingPaths sends raw requests whose paths climb out of the bucket, as no S3
// client would: the endpoint refuses them and writes nothing outside its directory.
func TestS3ServerRejectsEscapingPaths(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "s3")
	srv := newS3Server(t, dir)
	host := strings.TrimPrefix(srv.Endpoint(), "http://")
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/" + testBucket + "/../../escaped", http.StatusBadRequest},
		{"/" + testBucket + "/%2e%2e/%2e%2e/escaped", http.StatusBadRequest},
		{"/" + testBucket + "/seg/../../../escaped", http.StatusBadRequest},
		{"/../escaped/x", http.StatusNotFound}, // bucket ".."
	} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil", tc.path, host)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("PUT %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("PUT %s: HTTP %d, want %d: %s", tc.path, resp.StatusCode, tc.status, body)
		}
	}
	assertOnly(t, parent, "s3")
	assertOnly(t, dir, "buckets", "metadata")
}

// TestDirBackendTempFilesInvisible: an object being written, and temporary files a crash left
// behind, are not objects; reopening the directory removes the latter.
func TestDirBackendTempFilesInvisible(t *testing.T) {
	b, dir := newTestBackend(t)
	data := bytes.Repeat([]byte("x"), 1<<20)
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	go func() {
		_, err := b.PutObject(testBucket, "seg/in-flight", nil, pr, int64(len(data)), nil)
		putDone <- err
	}()
	if _, err := pw.Write(data[:len(data)/2]); err != nil { // returns once the PUT has read it
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "buckets", testBucket, tmpDirName)
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 {
		t.Fatalf("while a PUT is under way, %s holds %d files, want 1", tmp, len(entries))
	}
	if _, err := b.HeadObject(testBucket, "seg/in-flight"); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Errorf("HeadObject of an object being written = %v, want NoSuchKey", err)
	}
	if keys := listAll(t, b, gofakes3.Prefix{}, 1000); len(keys) != 0 {
		t.Errorf("while a PUT is under way, the bucket lists %q", keys)
	}
	if _, err := pw.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-putDone; err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if keys := listAll(t, b, gofakes3.Prefix{}, 1000); !slices.Equal(keys, []string{"seg/in-flight"}) {
		t.Errorf("after the PUT, the bucket lists %q", keys)
	}
	assertNoTempFiles(t, dir)

	// What a crash mid-PUT leaves.
	for _, p := range []string{
		filepath.Join(dir, "buckets", testBucket, tmpDirName, "put-123"),
		filepath.Join(dir, "metadata", testBucket, tmpDirName, "meta-123"),
	} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		p    gofakes3.Prefix
		want []string
	}{
		{gofakes3.Prefix{}, []string{"seg/in-flight"}},
		{gofakes3.Prefix{HasPrefix: true, Prefix: "."}, nil},
		{gofakes3.Prefix{HasDelimiter: true, Delimiter: "/"}, []string{"seg/"}},
	} {
		if keys := listAll(t, b, tc.p, 1000); !slices.Equal(keys, tc.want) {
			t.Errorf("with leftover temporary files, listing %v gives %q, want %q", tc.p, keys, tc.want)
		}
	}
	if _, err := newDirBackend(dir); err != nil {
		t.Fatal(err)
	}
	assertNoTempFiles(t, dir)
}

// listAll lists the bucket page by page (maxKeys per page), following NextMarker, and returns
// keys and common prefixes in the order listed. It checks each page's size and that only the last
// is not truncated.
func listAll(t *testing.T, b *dirBackend, prefix gofakes3.Prefix, maxKeys int64) []string {
	t.Helper()
	var out []string
	page := gofakes3.ListBucketPage{MaxKeys: maxKeys}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("listing does not end")
		}
		list, err := b.ListBucket(testBucket, &prefix, page)
		if err != nil {
			t.Fatalf("ListBucket(%v, %+v): %v", prefix, page, err)
		}
		// Contents and CommonPrefixes are each in order; merged, they are the page in key order.
		var entries []string
		for _, c := range list.Contents {
			entries = append(entries, c.Key)
		}
		for _, p := range list.CommonPrefixes {
			entries = append(entries, p.Prefix)
		}
		slices.Sort(entries)
		if int64(len(entries)) > maxKeys {
			t.Fatalf("ListBucket(%v, %+v) returned %d entries", prefix, page, len(entries))
		}
		out = append(out, entries...)
		if !list.IsTruncated {
			return out
		}
		if list.NextMarker == "" || len(entries) == 0 {
			t.Fatalf("ListBucket(%v, %+v) is truncated with marker %q after %d entries", prefix, page, list.NextMarker, len(entries))
		}
		page.Marker, page.HasMarker = list.NextMarker, true
	}
}

// TestDirBackendList compares paginated listings, for prefixes, delimiters and page sizes, with a
// model: the sorted keys that start with the prefix, each matched by gofakes3's own Prefix.Match,
// common prefixes once. (Match alone, with a delimiter, ignores leading delimiters: prefix "/"
// would match every key, where S3 matches none.)
func TestDirBackendList(t *testing.T) {
	b, _ := newTestBackend(t)
	keys := []string{"a.b", "a/c", "a0", "a/b/c", "a/b/d", "b", "other/z", "segx", "dir/gone"}
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("seg/%02d", i))
	}
	keys = append(keys, "seg/sub/1", "seg/sub/2", "seg/zz/1")
	for _, k := range keys {
		mustPutObject(t, b, k, []byte(k))
	}
	// A deleted object leaves its directory behind, which lists as nothing.
	if _, err := b.DeleteObject(testBucket, "dir/gone"); err != nil {
		t.Fatal(err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "dir/gone" })
	slices.Sort(keys)

	model := func(p gofakes3.Prefix) []string {
		var out []string
		for _, k := range keys {
			var m gofakes3.PrefixMatch
			if !strings.HasPrefix(k, p.Prefix) || !p.Match(k, &m) {
				continue
			}
			if m.CommonPrefix {
				if len(out) == 0 || out[len(out)-1] != m.MatchedPart {
					out = append(out, m.MatchedPart)
				}
				continue
			}
			out = append(out, k)
		}
		return out
	}
	for _, pfx := range []string{"", "a", "a/", "a/b", "seg/", "seg/1", "seg/sub/", "segx", "nothing", "nothing/", "../", "a//", "/"} {
		for _, delim := range []string{"", "/"} {
			p := gofakes3.Prefix{HasPrefix: pfx != "", Prefix: pfx, HasDelimiter: delim != "", Delimiter: delim}
			want := model(p)
			for _, maxKeys := range []int64{1, 2, 7, 1000} {
				if got := listAll(t, b, p, maxKeys); !slices.Equal(got, want) {
					t.Errorf("list %v, %d per page = %q, want %q", p, maxKeys, got, want)
				}
			}
		}
	}

	// A V1 marker (or V2 start-after) can be any string.
	list, err := b.ListBucket(testBucket, nil, gofakes3.ListBucketPage{Marker: "a/", HasMarker: true, MaxKeys: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list.Contents {
		got = append(got, c.Key)
		if want := etagOf([]byte(c.Key)); c.ETag != want || c.Size != int64(len(c.Key)) {
			t.Errorf("%s: ETag %s, size %d; want %s, %d", c.Key, c.ETag, c.Size, want, len(c.Key))
		}
	}
	if want := []string{"a/b/c", "a/b/d", "a/c"}; !slices.Equal(got, want) || !list.IsTruncated {
		t.Errorf("after marker a/: %q, truncated %v; want %q, truncated", got, list.IsTruncated, want)
	}
	if _, err := b.ListBucket("no-such-bucket", nil, gofakes3.ListBucketPage{}); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
		t.Errorf("ListBucket of a missing bucket = %v, want NoSuchBucket", err)
	}
}

// TestS3ServerListsManyPages lists more objects than fit in one page through the S3 client, whose
// paginator follows the continuation tokens, with and without a delimiter.
func TestS3ServerListsManyPages(t *testing.T) {
	t.Parallel()
	srv := newS3Server(t, t.TempDir())
	var want []string
	for i := range 1234 {
		key := fmt.Sprintf("seg/%05d", i)
		mustPutObject(t, srv.backend, key, []byte(key)) // straight to the backend: quicker
		want = append(want, key)
	}
	mustPutObject(t, srv.backend, "seh/1", nil)
	s := newS3Store(t, srv.Endpoint(), testBucket)
	got, err := s.List(context.Background(), "seg/")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List(seg/) = %d keys (%v), want %d in order", len(got), err, len(want))
	}

	// Delimited, 100 keys a page: seg/0xxxx/ and seg/1xxxx/ are folders of this listing.
	for i := range 3 {
		mustPutObject(t, srv.backend, fmt.Sprintf("seg/%d/x", i), nil)
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(testBucket), Prefix: aws.String("seg/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(100),
	})
	var objects, prefixes, pages int
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		objects += len(page.Contents)
		prefixes += len(page.CommonPrefixes)
	}
	if objects != len(want) || prefixes != 3 || pages != 13 {
		t.Errorf("delimited listing: %d objects, %d prefixes in %d pages; want %d, 3 in 13", objects, prefixes, pages, len(want))
	}
}

// TestS3ServerObjectHeaders checks, through the S3 client, the ETag (the MD5 taken from gofakes3)
// and ranges, suffix ranges included, on an object large enough for several reads.
func TestS3ServerObjectHeaders(t *testing.T) {
	ctx := context.Background()
	s := newS3Store(t, newS3Server(t, t.TempDir()).Endpoint(), testBucket)
	data := make([]byte, 3<<20+17)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(data)
	mustPut(t, s, "seg/big", data)

	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("seg/big")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(head.ETag); got != etagOf(data) || aws.ToInt64(head.ContentLength) != int64(len(data)) {
		t.Errorf("HEAD: ETag %s, length %d; want %s, %d", got, aws.ToInt64(head.ContentLength), etagOf(data), len(data))
	}
	if got, err := s.Get(ctx, "seg/big"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	for _, tc := range []struct {
		rnge     string
		from, to int // data[from:to]
	}{
		{"bytes=0-0", 0, 1},
		{"bytes=1000-2000999", 1000, 2001000},
		{"bytes=3145000-", 3145000, len(data)},
		{"bytes=-17", len(data) - 17, len(data)},
		{"bytes=100-99999999", 100, len(data)},
	} {
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("seg/big"), Range: aws.String(tc.rnge)})
		if err != nil {
			t.Fatalf("GET %s: %v", tc.rnge, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, data[tc.from:tc.to]) {
			t.Errorf("GET %s: %d bytes, %v; want bytes %d to %d", tc.rnge, len(got), err, tc.from, tc.to)
		}
		wantRange := fmt.Sprintf("bytes %d-%d/%d", tc.from, tc.to-1, len(data))
		if got := aws.ToString(out.ContentRange); got != wantRange || aws.ToString(out.ETag) != etagOf(data) {
			t.Errorf("GET %s: Content-Range %q, ETag %s; want %q, %s", tc.rnge, got, aws.ToString(out.ETag), wantRange, etagOf(data))
		}
	}
}

// TestDirBackendRangeIsAFileSection: a ranged GetObject hands gofakes3 a reader of that section of
// the file, not the object read into memory.
func TestDirBackendRangeIsAFileSection(t *testing.T) {
	b, _ := newTestBackend(t)
	mustPutObject(t, b, "r", []byte("0123456789"))
	obj, err := b.GetObject(testBucket, "r", &gofakes3.ObjectRangeRequest{Start: 3, End: 6})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.Contents.(*fileSection); !ok {
		t.Errorf("ranged Contents is a %T, want a *fileSection", obj.Contents)
	}
	if got := readObject(t, obj); string(got) != "3456" || obj.Size != 10 || *obj.Range != (gofakes3.ObjectRange{Start: 3, Length: 4}) {
		t.Errorf("range 3-6: %q, size %d, %+v", got, obj.Size, obj.Range)
	}
	obj, err = b.GetObject(testBucket, "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.Contents.(*os.File); !ok {
		t.Errorf("whole-object Contents is a %T, want the *os.File", obj.Contents)
	}
	if got := readObject(t, obj); string(got) != "0123456789" {
		t.Errorf("whole object: %q", got)
	}
	_, err = b.GetObject(testBucket, "r", &gofakes3.ObjectRangeRequest{Start: 10, End: 12})
	wantCode(t, "GetObject past the end", err, gofakes3.ErrInvalidRange)
}

func TestDirBackendBuckets(t *testing.T) {
	b, dir := newTestBackend(t)
	wantCode(t, "CreateBucket of an existing bucket", b.CreateBucket(testBucket), gofakes3.ErrBucketAlreadyExists)
	if err := b.CreateBucket("second"); err != nil {
		t.Fatal(err)
	}
	buckets, err := b.ListBuckets()
	if err != nil || len(buckets) != 2 || buckets[0].Name != "second" || buckets[1].Name != testBucket {
		t.Fatalf("ListBuckets = %+v, %v", buckets, err)
	}

	mustPutObject(t, b, "a/b/c", []byte("x"))
	wantCode(t, "DeleteBucket of a bucket with an object", b.DeleteBucket(testBucket), gofakes3.ErrBucketNotEmpty)
	if _, err := b.DeleteObject(testBucket, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteBucket(testBucket); err != nil { // a/b/ is left, empty
		t.Fatalf("DeleteBucket of a bucket emptied by deletes: %v", err)
	}
	wantCode(t, "DeleteBucket of a missing bucket", b.DeleteBucket(testBucket), gofakes3.ErrNoSuchBucket)

	mustPutObjectIn := func(bucket, key string) {
		if _, err := b.PutObject(bucket, key, nil, strings.NewReader("x"), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	mustPutObjectIn("second", "k")
	if err := b.ForceDeleteBucket("second"); err != nil {
		t.Fatalf("ForceDeleteBucket: %v", err)
	}
	wantCode(t, "ForceDeleteBucket of a missing bucket", b.ForceDeleteBucket("second"), gofakes3.ErrNoSuchBucket)
	assertOnly(t, filepath.Join(dir, "buckets"))
	assertOnly(t, filepath.Join(dir, "metadata"))

	// Object operations in a missing bucket.
	_, err = b.PutObject(testBucket, "k", nil, strings.NewReader("x"), 1, nil)
	wantCode(t, "PutObject", err, gofakes3.ErrNoSuchBucket)
	_, err = b.GetObject(testBucket, "k", nil)
	wantCode(t, "GetObject", err, gofakes3.ErrNoSuchBucket)
	_, err = b.HeadObject(testBucket, "k")
	wantCode(t, "HeadObject", err, gofakes3.ErrNoSuchBucket)
	_, err = b.DeleteObject(testBucket, "k")
	wantCode(t, "DeleteObject", err, gofakes3.ErrNoSuchBucket)
	_, err = b.DeleteMulti(testBucket, "k")
	wantCode(t, "DeleteMulti", err, gofakes3.ErrNoSuchBucket)
}

// TestDirBackendKeysArePaths: "a" and "a/b" cannot both be objects; the refusal says why, and the
// key is free again once the other is deleted.
func TestDirBackendKeysArePaths(t *testing.T) {
	b, _ := newTestBackend(t)
	mustPutObject(t, b, "a", []byte("file"))
	_, err := b.PutObject(testBucket, "a/b", nil, strings.NewReader("x"), 1, nil)
	wantCode(t, "PutObject(a/b) under the object a", err, gofakes3.ErrInvalidArgument)
	if _, err := b.GetObject(testBucket, "a/b", nil); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Errorf("GetObject(a/b) under the object a = %v, want NoSuchKey", err)
	}
	if _, err := b.DeleteObject(testBucket, "a"); err != nil {
		t.Fatal(err)
	}
	mustPutObject(t, b, "a/b", []byte("x"))
	_, err = b.PutObject(testBucket, "a", nil, strings.NewReader("x"), 1, nil)
	wantCode(t, "PutObject(a) over the objects a/...", err, gofakes3.ErrInvalidArgument)
	if _, err := b.GetObject(testBucket, "a", nil); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Errorf("GetObject(a) over a/b = %v, want NoSuchKey", err)
	}
	if _, err := b.DeleteObject(testBucket, "a"); err != nil { // a directory, not an object
		t.Errorf("DeleteObject(a) over a/b = %v", err)
	}
	if _, err := b.DeleteObject(testBucket, "a/b"); err != nil {
		t.Fatal(err)
	}
	mustPutObject(t, b, "a", []byte("file again"))
}

func TestDirBackendCopyAndDeleteMulti(t *testing.T) {
	b, _ := newTestBackend(t)
	data := []byte("copied")
	if _, err := b.PutObject(testBucket, "src", map[string]string{"X-Amz-Meta-Kind": "test"}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	res, err := b.CopyObject(testBucket, "src", testBucket, "dst/copy", map[string]string{"X-Amz-Meta-Extra": "1"})
	if err != nil || res.ETag != etagOf(data) {
		t.Fatalf("CopyObject = %+v, %v", res, err)
	}
	obj, err := b.GetObject(testBucket, "dst/copy", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readObject(t, obj); !bytes.Equal(got, data) || !bytes.Equal(obj.Hash, md5Of(data)) || obj.Metadata["X-Amz-Meta-Extra"] != "1" {
		t.Errorf("copy: %q, hash %x, metadata %v", got, obj.Hash, obj.Metadata)
	}

	result, err := b.DeleteMulti(testBucket, "src", "never", "../up")
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, d := range result.Deleted {
		deleted = append(deleted, d.Key)
	}
	if !slices.Equal(deleted, []string{"src", "never"}) || len(result.Error) != 1 ||
		result.Error[0].Key != "../up" || result.Error[0].Code != gofakes3.ErrInvalidArgument {
		t.Errorf("DeleteMulti: deleted %q, errors %+v", deleted, result.Error)
	}
	if _, err := b.HeadObject(testBucket, "src"); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Errorf("HeadObject after DeleteMulti = %v, want NoSuchKey", err)
	}
}

// TestS3ServerReadsS3aferoDir: a directory written by gofakes3's s3afero backend, which earlier
// versions used, is served as it is: objects with s3afero's sidecars keep their ETags and metadata
// without being hashed again; one whose sidecar is missing, or stale because the file was
// replaced, is hashed once and gets a new sidecar. And s3afero can still read what the endpoint
// writes.
func TestS3ServerReadsS3aferoDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{
		"seg/one":       []byte("first object"),
		"seg/sub/two":   []byte("second object"),
		"top":           []byte("third object"),
		"seg/no-meta":   []byte("sidecar lost"),
		"seg/replaced":  []byte("replaced by hand"),
		"seg/same-size": []byte("0123456789"),
	}
	for key, data := range objects {
		meta := map[string]string{"X-Amz-Meta-Origin": "s3afero", "Content-Type": "text/plain"}
		if _, err := old.PutObject(testBucket, key, meta, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	b := &dirBackend{buckets: filepath.Join(dir, "buckets"), meta: filepath.Join(dir, "metadata")} // for its paths
	if err := os.Remove(b.sidecarPath(testBucket, "seg/no-meta")); err != nil {
		t.Fatalf("s3afero's sidecar is not where the new backend looks for it: %v", err)
	}
	// Replaced by hand: the size tells one; for the other, only the modification time does (set
	// here, as a file system's clock may not have ticked since s3afero wrote the file).
	objects["seg/replaced"] = []byte("replaced, longer this time")
	objects["seg/same-size"] = []byte("9876543210")
	for _, key := range []string{"seg/replaced", "seg/same-size"} {
		p := filepath.Join(dir, "buckets", testBucket, key)
		if err := os.WriteFile(p, objects[key], 0o644); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}

	srv := newS3Server(t, dir)
	s := newS3Store(t, srv.Endpoint(), testBucket)
	keys, err := s.List(ctx, "")
	if want := slices.Sorted(maps.Keys(objects)); err != nil || !slices.Equal(keys, want) {
		t.Fatalf("List = %q, %v; want %q", keys, err, want)
	}
	for key, data := range objects {
		if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get(%q) = %q, %v; want %q", key, got, err, data)
		}
		head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("HEAD %s: %v", key, err)
		}
		if got := aws.ToString(head.ETag); got != etagOf(data) {
			t.Errorf("HEAD %s: ETag %s, want %s", key, got, etagOf(data))
		}
		if key != "seg/no-meta" && head.Metadata["origin"] != "s3afero" {
			t.Errorf("HEAD %s: user metadata %v, want origin=s3afero kept", key, head.Metadata)
		}
		st, err := os.Stat(filepath.Join(dir, "buckets", testBucket, key))
		if err != nil {
			t.Fatal(err)
		}
		if sc := b.readSidecar(testBucket, key); !sc.describes(st) || !bytes.Equal(sc.Hash, md5Of(data)) {
			t.Errorf("%s: sidecar %+v does not describe the object", key, sc)
		}
	}

	// New objects, read back by s3afero.
	mustPut(t, s, "seg/new", []byte("written by the new backend"))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), dir))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := again.GetObject(testBucket, "seg/new", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Contents.Close()
	// The metadata shows that s3afero read the sidecar (rather than finding none and hashing).
	if got, _ := io.ReadAll(obj.Contents); string(got) != "written by the new backend" || !bytes.Equal(obj.Hash, md5Of(got)) || obj.Metadata["Last-Modified"] == "" {
		t.Errorf("s3afero reads %q with hash %x, metadata %v", got, obj.Hash, obj.Metadata)
	}
}

// TestS3ServerContentMD5: a body that does not match its Content-MD5 fails gofakes3's check, which
// its reader reports at EOF, while the backend is writing: nothing is stored. A body that matches
// gets its MD5 as ETag.
func TestS3ServerContentMD5(t *testing.T) {
	srv := newS3Server(t, t.TempDir())
	url := srv.Endpoint() + "/" + testBucket + "/seg/checked"
	put := func(body, md5Of string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum([]byte(md5Of))
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := put("the body", "another body"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT with a wrong Content-MD5: HTTP %d, want 400", resp.StatusCode)
	}
	if _, err := srv.backend.HeadObject(testBucket, "seg/checked"); !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
		t.Errorf("after a PUT with a wrong Content-MD5, HeadObject = %v, want NoSuchKey", err)
	}
	resp := put("the body", "the body")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != etagOf([]byte("the body")) {
		t.Errorf("PUT with its Content-MD5: HTTP %d, ETag %s", resp.StatusCode, resp.Header.Get("ETag"))
	}
	if obj, err := srv.backend.HeadObject(testBucket, "seg/checked"); err != nil || !bytes.Equal(obj.Hash, md5Of([]byte("the body"))) {
		t.Errorf("HeadObject = %+v, %v", obj, err)
	}
}
