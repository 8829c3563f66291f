package segstore

import (
	"bytes"
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// dirBackend is the gofakes3.Backend under S3Server: objects are plain files on a directory, in the
// layout of gofakes3's s3afero backend, which it replaces:
//
//	<dir>/buckets/<bucket>/<key>                        an object's bytes ('/' in keys are directories)
//	<dir>/metadata/<bucket>/<flat key>-<fnv128a(key)>   its sidecar: JSON {File, ModTime, Size, Hash, Meta}
//	<dir>/{buckets,metadata}/<bucket>/.streamhouse-tmp/ files being written, never listed
//
// It exists to hash each object once. gofakes3 already computes a PUT body's MD5 (the ETag) as it
// reads it; s3afero computed it a second time while writing, which made MD5 most of the endpoint's
// CPU. PutObject takes the sum from gofakes3's reader instead, and keeps it in the sidecar with the
// size, the file's modification time and the user metadata.
//
// A PUT writes a temporary file outside the lock, so PUTs of different keys run in parallel, then
// under the lock checks its conditions and renames the sidecar and then the data into place:
// readers never see part of an object, and If-None-Match: * is atomic. Readers take the lock
// shared while they open the file and read its sidecar, so the two match.
//
// The layout is s3afero's so that a dev directory written by earlier StreamHouse versions keeps
// working unchanged, and their sidecars are used as they are. A sidecar is trusted only while the
// file's size and modification time are those it records: an object without one (or with a stale
// one: the file was replaced by hand, or a crash came between the two renames) has its MD5
// computed from the file on first access, and the sidecar is rewritten then.
//
// Keys are file paths here, so keys that cannot be (empty path components, ".", "..", "a" and "a/b"
// at once) are refused, and the directory must have one server at a time: temporary files are
// swept at open, and the lock that makes conditional PUTs atomic is in this process. Nothing is
// fsynced: an OS crash can lose recent objects, which dev mode and tests accept.
type dirBackend struct {
	buckets string // <dir>/buckets
	meta    string // <dir>/metadata

	// mu is held exclusively to publish or remove objects and buckets, and shared to read an
	// object's file and sidecar together.
	mu sync.RWMutex
}

var _ gofakes3.Backend = (*dirBackend)(nil)

// tmpDirName is the directory, in a bucket's data and metadata directories, of files being written.
// It is a reserved key prefix.
const tmpDirName = ".streamhouse-tmp"

// newDirBackend opens (creating if needed) a backend on dir and removes the temporary files that a
// crash left behind.
func newDirBackend(dir string) (*dirBackend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b := &dirBackend{buckets: filepath.Join(abs, "buckets"), meta: filepath.Join(abs, "metadata")}
	for _, d := range []string{b.buckets, b.meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	buckets, err := b.ListBuckets()
	if err != nil {
		return nil, err
	}
	for _, bk := range buckets {
		for _, tmp := range []string{b.dataTmp(bk.Name), b.metaTmp(bk.Name)} {
			if err := os.RemoveAll(tmp); err != nil {
				return nil, fmt.Errorf("removing temporary files: %w", err)
			}
		}
	}
	return b, nil
}

func (b *dirBackend) bucketDir(bucket string) string {
	return filepath.Join(b.buckets, bucket)
}

func (b *dirBackend) dataTmp(bucket string) string {
	return filepath.Join(b.buckets, bucket, tmpDirName)
}

func (b *dirBackend) metaTmp(bucket string) string {
	return filepath.Join(b.meta, bucket, tmpDirName)
}

// objectPath returns the file of key, or an InvalidArgument error if key cannot be one: a key must
// stay inside its bucket's directory, whatever ".." or absolute path it is made of. gofakes3 has
// checked that the bucket exists, but a name that is not a bucket name is refused here too.
func (b *dirBackend) objectPath(bucket, key string) (string, error) {
	if gofakes3.ValidateBucketName(bucket) != nil {
		return "", gofakes3.BucketNotFound(bucket)
	}
	if err := checkObjectKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.bucketDir(bucket), filepath.FromSlash(key)), nil
}

func checkObjectKey(key string) error {
	invalid := func(why string) error {
		return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument, "key %q is not supported by this endpoint: %s", key, why)
	}
	switch {
	case key == "":
		return invalid("it is empty")
	case strings.HasPrefix(key, "/"):
		return invalid("it starts with '/'")
	case strings.IndexByte(key, 0) >= 0:
		return invalid("it contains a NUL byte")
	}
	for i, part := range strings.Split(key, "/") {
		switch {
		case part == "":
			return invalid("it has an empty path component ('//' or a trailing '/')")
		case part == "." || part == "..":
			return invalid("it has a '.' or '..' path component")
		case i == 0 && part == tmpDirName:
			return invalid(tmpDirName + "/ is reserved")
		}
	}
	// The OS's own rules (on Windows, '\' separators and reserved names).
	if !filepath.IsLocal(filepath.FromSlash(key)) {
		return invalid("it is not a relative path on this system")
	}
	return nil
}

// sidecar is what an object's file cannot tell: its MD5 and user metadata. The fields are those of
// s3afero's Metadata, so that either reads the other's.
type sidecar struct {
	File    string // "<bucket>/<key>", for whoever reads the directory
	ModTime time.Time
	Size    int64
	Hash    []byte
	Meta    map[string]string
}

// describes reports whether sc is the sidecar of the file st.
func (sc *sidecar) describes(st fs.FileInfo) bool {
	return sc != nil && len(sc.Hash) == md5.Size && sc.Size == st.Size() && sc.ModTime.Equal(st.ModTime())
}

// sidecarPath is s3afero's: the key with '/' and '\' flattened to '_', then the key's FNV-128a,
// cut short where s3afero could not have written the name at all (over 255 bytes).
func (b *dirBackend) sidecarPath(bucket, key string) string {
	h := fnv.New128a()
	h.Write([]byte(key))
	flat := strings.NewReplacer("/", "_", `\`, "_").Replace(key)
	const maxFlat = 255 - 1 - 2*16 // "-" and the hex FNV-128a
	if len(flat) > maxFlat {
		flat = flat[:maxFlat]
	}
	return filepath.Join(b.meta, bucket, flat+"-"+hex.EncodeToString(h.Sum(nil)))
}

// readSidecar returns key's sidecar, or nil if it is missing or unreadable (the object is then
// treated as one without).
func (b *dirBackend) readSidecar(bucket, key string) *sidecar {
	data, err := os.ReadFile(b.sidecarPath(bucket, key))
	if err != nil {
		return nil
	}
	var sc sidecar
	if json.Unmarshal(data, &sc) != nil {
		return nil
	}
	return &sc
}

// writeSidecarTemp writes sc to a new temporary file of bucket and returns its name.
func (b *dirBackend) writeSidecarTemp(bucket string, sc *sidecar) (string, error) {
	data, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	f, err := b.createTemp(bucket, b.metaTmp(bucket), "meta-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// createTemp creates a temporary file in dir, one of bucket's temporary directories, creating the
// directory if needed (buckets made by s3afero have none).
func (b *dirBackend) createTemp(bucket, dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if err := b.requireBucket(bucket); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, pattern)
}

// notFound returns NoSuchBucket or NoSuchKey, whichever is the case.
func (b *dirBackend) notFound(bucket, key string) error {
	if err := b.requireBucket(bucket); err != nil {
		return err
	}
	return gofakes3.KeyNotFound(key)
}

func isAbsent(err error) bool { return errors.Is(err, fs.ErrNotExist) || isNotDir(err) }

// ListBuckets implements gofakes3.Backend. A bucket's creation date is its directory's mtime, as
// with s3afero: portable file systems keep no birth time.
func (b *dirBackend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	entries, err := os.ReadDir(b.buckets)
	if err != nil {
		return nil, err
	}
	var out []gofakes3.BucketInfo
	for _, e := range entries {
		if !e.IsDir() || gofakes3.ValidateBucketName(e.Name()) != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, gofakes3.BucketInfo{Name: e.Name(), CreationDate: gofakes3.NewContentTime(info.ModTime())})
	}
	return out, nil
}

// BucketExists implements gofakes3.Backend. A name that is not a valid bucket name (such as "..",
// which the URL path may carry) names no bucket.
func (b *dirBackend) BucketExists(bucket string) (bool, error) {
	if gofakes3.ValidateBucketName(bucket) != nil {
		return false, nil
	}
	st, err := os.Stat(b.bucketDir(bucket))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}

// requireBucket returns NoSuchBucket unless bucket exists.
func (b *dirBackend) requireBucket(bucket string) error {
	ok, err := b.BucketExists(bucket)
	if err == nil && !ok {
		err = gofakes3.BucketNotFound(bucket)
	}
	return err
}

// CreateBucket implements gofakes3.Backend.
func (b *dirBackend) CreateBucket(bucket string) error {
	if err := gofakes3.ValidateBucketName(bucket); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.Mkdir(b.bucketDir(bucket), 0o755); errors.Is(err, fs.ErrExist) {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, bucket)
	} else if err != nil {
		return err
	}
	for _, d := range []string{b.dataTmp(bucket), b.metaTmp(bucket)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBucket implements gofakes3.Backend. Directories left empty by deleted objects do not make
// a bucket non-empty.
func (b *dirBackend) DeleteBucket(bucket string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.requireBucket(bucket); err != nil {
		return err
	}
	empty := true
	if err := walkKeys(b.bucketDir(bucket), "", "", "", func(string) (bool, error) {
		empty = false
		return false, nil
	}); err != nil {
		return err
	}
	if !empty {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, bucket)
	}
	return b.removeBucketLocked(bucket)
}

// ForceDeleteBucket implements gofakes3.Backend.
func (b *dirBackend) ForceDeleteBucket(bucket string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.requireBucket(bucket); err != nil {
		return err
	}
	return b.removeBucketLocked(bucket)
}

func (b *dirBackend) removeBucketLocked(bucket string) error {
	if err := os.RemoveAll(b.bucketDir(bucket)); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(b.meta, bucket))
}

// ListBucket implements gofakes3.Backend, with pagination: it walks the bucket's directories in key
// order, from the one named by the prefix, skipping whatever sorts before the marker, and stops one
// key past the page. Keys must start with the prefix, as in S3 (gofakes3's Prefix.Match alone,
// with a delimiter, ignores leading delimiters).
func (b *dirBackend) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if err := b.requireBucket(bucket); err != nil {
		return nil, err
	}
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	var keyPrefix, dir string
	if prefix.HasPrefix {
		keyPrefix = prefix.Prefix
	}
	list := gofakes3.NewObjectList()
	if i := strings.LastIndexByte(keyPrefix, '/'); i >= 0 {
		dir = keyPrefix[:i]
		if checkObjectKey(dir) != nil {
			return list, nil // no key we can hold starts with this prefix
		}
	}
	marker := ""
	if page.HasMarker {
		marker = page.Marker
	}

	var count int64
	var last string // the last common prefix added
	err := walkKeys(b.bucketDir(bucket), dir, keyPrefix, marker, func(key string) (bool, error) {
		var m gofakes3.PrefixMatch
		if !prefix.Match(key, &m) {
			return true, nil
		}
		// A common prefix is reported once, and not again on the pages after the one that ended
		// with it (the marker is then that prefix, and its keys sort after it).
		if m.CommonPrefix && (m.MatchedPart == last || (marker != "" && m.MatchedPart <= marker)) {
			return true, nil
		}
		if page.MaxKeys > 0 && count == page.MaxKeys {
			list.IsTruncated = true
			return false, nil
		}
		var content *gofakes3.Content
		if !m.CommonPrefix {
			st, sc, err := b.info(bucket, key)
			if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
				return true, nil // deleted since the walk saw it
			} else if err != nil {
				return false, err
			}
			content = &gofakes3.Content{
				Key:          key,
				LastModified: gofakes3.NewContentTime(st.ModTime()),
				ETag:         gofakes3.FormatETag(sc.Hash),
				Size:         st.Size(),
			}
		}
		count++
		if m.CommonPrefix {
			list.AddPrefix(m.MatchedPart)
			last, list.NextMarker = m.MatchedPart, m.MatchedPart
		} else {
			list.Add(content)
			list.NextMarker = key
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if !list.IsTruncated {
		list.NextMarker = ""
	}
	return list, nil
}

// walkKeys calls fn, in ascending order, with the keys under dir (a key prefix without its trailing
// '/', "" for the bucket's root) that start with prefix and sort after marker, until fn returns
// false. Key order is not the order of a plain directory walk ("a.b" < "a/c" < "a0"): entries are
// sorted as their keys begin, a directory "a" as "a/".
func walkKeys(root, dir, prefix, marker string, fn func(key string) (bool, error)) error {
	_, err := walkDir(root, dir, prefix, marker, fn)
	return err
}

func walkDir(root, dir, prefix, marker string, fn func(key string) (bool, error)) (bool, error) {
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(dir)))
	if isAbsent(err) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil && !isAbsent(err) {
		return false, err
	}
	type child struct {
		key, sortKey string
		isDir        bool
	}
	children := make([]child, 0, len(entries))
	for _, e := range entries {
		if dir == "" && e.Name() == tmpDirName {
			continue
		}
		c := child{key: e.Name(), isDir: e.IsDir()}
		if !c.isDir && !e.Type().IsRegular() {
			continue // no PUT makes symlinks or devices
		}
		if dir != "" {
			c.key = dir + "/" + c.key
		}
		c.sortKey = c.key
		if c.isDir {
			c.sortKey += "/"
		}
		// Keep an entry if it (or, for a directory, something under it) can start with prefix and
		// sort after marker.
		if !strings.HasPrefix(c.sortKey, prefix) && !(c.isDir && strings.HasPrefix(prefix, c.sortKey)) {
			continue
		}
		if marker != "" && c.sortKey <= marker && !(c.isDir && strings.HasPrefix(marker, c.sortKey)) {
			continue
		}
		children = append(children, c)
	}
	slices.SortFunc(children, func(a, b child) int { return cmp.Compare(a.sortKey, b.sortKey) })
	for _, c := range children {
		var more bool
		if c.isDir {
			more, err = walkDir(root, c.key, prefix, marker, fn)
		} else if c.key > marker {
			more, err = fn(c.key)
		} else {
			more = true
		}
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// info returns key's file information and a sidecar that describes it, without opening the file
// unless the sidecar must be rebuilt.
func (b *dirBackend) info(bucket, key string) (fs.FileInfo, *sidecar, error) {
	f, st, sc, err := b.lookup(bucket, key, false)
	if f != nil {
		f.Close()
	}
	return st, sc, err
}

// lookup finds key and a sidecar that describes it; with open, it also opens the file, which the
// caller must close.
func (b *dirBackend) lookup(bucket, key string, open bool) (*os.File, fs.FileInfo, *sidecar, error) {
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return nil, nil, nil, err
	}
	var f *os.File
	var st fs.FileInfo
	var sc *sidecar
	b.mu.RLock()
	if open {
		if f, err = os.Open(p); err == nil {
			if st, err = f.Stat(); err != nil {
				f.Close()
			}
		}
	} else {
		st, err = os.Stat(p)
	}
	if err == nil && st.Mode().IsRegular() {
		sc = b.readSidecar(bucket, key)
	}
	b.mu.RUnlock()
	switch {
	case isAbsent(err):
		return nil, nil, nil, b.notFound(bucket, key)
	case err != nil:
		return nil, nil, nil, err
	case !st.Mode().IsRegular(): // a directory: keys below it exist, not this one
		if f != nil {
			f.Close()
		}
		return nil, nil, nil, gofakes3.KeyNotFound(key)
	case sc.describes(st):
		return f, st, sc, nil
	}
	if f == nil {
		if f, err = os.Open(p); isAbsent(err) {
			return nil, nil, nil, b.notFound(bucket, key)
		} else if err != nil {
			return nil, nil, nil, err
		}
		defer f.Close()
	}
	st, sc, err = b.rebuildSidecar(bucket, key, p, f, sc)
	if err != nil {
		if open {
			f.Close()
		}
		return nil, nil, nil, err
	}
	if !open {
		f = nil // closed by the deferred Close
	}
	return f, st, sc, nil
}

// rebuildSidecar hashes f, key's file at path p, and writes a new sidecar for it, keeping the user
// metadata of old (nil if there was no sidecar). This happens once for an object written without
// a sidecar, or whose sidecar went stale.
func (b *dirBackend) rebuildSidecar(bucket, key, p string, f *os.File, old *sidecar) (fs.FileInfo, *sidecar, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size())); err != nil {
		return nil, nil, err
	}
	sc := &sidecar{File: bucket + "/" + key, ModTime: st.ModTime(), Size: st.Size(), Hash: h.Sum(nil)}
	if old != nil {
		sc.Meta = old.Meta
	}
	tmp, err := b.writeSidecarTemp(bucket, sc)
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(tmp) // fails harmlessly once renamed
	b.mu.Lock()
	defer b.mu.Unlock()
	// Only if the file is still the one hashed: a PUT may have replaced it meanwhile, with its own
	// sidecar.
	if now, err := os.Stat(p); err == nil && os.SameFile(now, st) && now.ModTime().Equal(st.ModTime()) && now.Size() == st.Size() {
		if err := os.Rename(tmp, b.sidecarPath(bucket, key)); err != nil {
			return nil, nil, err
		}
	}
	return st, sc, nil
}

// HeadObject implements gofakes3.Backend.
func (b *dirBackend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	st, sc, err := b.info(bucket, key)
	if err != nil {
		return nil, err
	}
	return &gofakes3.Object{
		Name: key, Metadata: sc.Meta, Size: st.Size(), Hash: sc.Hash,
		Contents: io.NopCloser(bytes.NewReader(nil)),
	}, nil
}

// GetObject implements gofakes3.Backend. Contents is the open file, or for a range a reader of
// that section of it: nothing is read ahead, and gofakes3 copying it to the response goes to
// sendfile(2) where the platform has it.
func (b *dirBackend) GetObject(bucket, key string, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	f, st, sc, err := b.lookup(bucket, key, true)
	if err != nil {
		return nil, err
	}
	rnge, err := rangeRequest.Range(st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	obj := &gofakes3.Object{Name: key, Metadata: sc.Meta, Size: st.Size(), Hash: sc.Hash, Range: rnge, Contents: f}
	if rnge != nil {
		if _, err := f.Seek(rnge.Start, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		obj.Contents = &fileSection{f: f, r: io.LimitedReader{R: f, N: rnge.Length}}
	}
	return obj, nil
}

// fileSection reads a section of a file from its current offset.
type fileSection struct {
	f *os.File
	r io.LimitedReader // of f
}

func (s *fileSection) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *fileSection) Close() error               { return s.f.Close() }

// WriteTo hands w the *io.LimitedReader over the *os.File, the form in which an HTTP response (a
// TCP connection's ReadFrom) recognises a file section it can sendfile.
func (s *fileSection) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, &s.r) }

// PutObject implements gofakes3.Backend. The MD5 comes from input when it offers one (gofakes3's
// hashingReader does: it has hashed the body as it was read), and is computed here otherwise.
func (b *dirBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	var sum func() []byte
	if h, ok := input.(interface{ Sum([]byte) []byte }); ok {
		sum = func() []byte { return h.Sum(nil) } // read to EOF by then
	} else {
		h := md5.New()
		input = io.TeeReader(input, h)
		sum = func() []byte { return h.Sum(nil) }
	}
	return gofakes3.PutObjectResult{}, b.put(bucket, key, meta, input, size, conditions, sum)
}

// copyBufs are put's copy buffers: larger than io.Copy's 32 KiB, for fewer writes of multi-MiB
// objects.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// put stores size bytes from r as key, whose MD5 sum returns once r has been read to EOF.
func (b *dirBackend) put(bucket, key string, meta map[string]string, r io.Reader, size int64, conditions *gofakes3.PutConditions, sum func() []byte) error {
	final, err := b.objectPath(bucket, key)
	if err != nil {
		return err
	}
	f, err := b.createTemp(bucket, b.dataTmp(bucket), "put-*")
	if err != nil {
		return err
	}
	published := false
	defer func() {
		if !published {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	buf := copyBufs.Get().(*[]byte)
	// Reading one byte past size both catches a longer body and, for an exact one, reads to the EOF
	// that finishes gofakes3's hash (and its Content-MD5 check, whose error is returned as it is).
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, io.LimitReader(r, size+1), *buf)
	copyBufs.Put(buf)
	if err != nil {
		return err
	}
	if n != size {
		return gofakes3.ErrIncompleteBody
	}
	hash := sum()
	if len(hash) != md5.Size { // a reader whose Sum is not an MD5
		h := md5.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			return err
		}
		hash = h.Sum(nil)
	}
	if err := f.Close(); err != nil {
		return err
	}
	st, err := os.Stat(f.Name()) // after Close: some file systems set the mtime then
	if err != nil {
		return err
	}
	if conditions == nil || conditions.IfNoneMatch == nil {
		meta = b.mergeMeta(bucket, key, final, meta)
	}
	scTmp, err := b.writeSidecarTemp(bucket, &sidecar{File: bucket + "/" + key, ModTime: st.ModTime(), Size: size, Hash: hash, Meta: meta})
	if err != nil {
		return err
	}
	defer os.Remove(scTmp) // fails harmlessly once renamed

	b.mu.Lock()
	defer b.mu.Unlock()
	if conditions != nil {
		if err := b.checkConditionsLocked(bucket, key, final, conditions); err != nil {
			return err
		}
	}
	if err := b.makeRoomLocked(key, final); err != nil {
		return err
	}
	// The sidecar first: the object exists once its data is in place.
	if err := os.Rename(scTmp, b.sidecarPath(bucket, key)); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return err
	}
	published = true
	return nil
}

// mergeMeta adds to meta the user metadata of the object being replaced that meta does not set,
// as gofakes3's own backends do (gofakes3.MergeMetadata).
func (b *dirBackend) mergeMeta(bucket, key, final string, meta map[string]string) map[string]string {
	if st, err := os.Stat(final); err != nil || !st.Mode().IsRegular() {
		return meta
	}
	old := b.readSidecar(bucket, key)
	if old == nil || len(old.Meta) == 0 {
		return meta
	}
	if meta == nil {
		meta = make(map[string]string, len(old.Meta))
	}
	for k, v := range old.Meta {
		if _, ok := meta[k]; !ok {
			meta[k] = v
		}
	}
	return meta
}

// checkConditionsLocked applies If-None-Match and If-Match to the object now stored as key.
func (b *dirBackend) checkConditionsLocked(bucket, key, final string, conditions *gofakes3.PutConditions) error {
	info := &gofakes3.ConditionalObjectInfo{}
	st, err := os.Stat(final)
	switch {
	case isAbsent(err):
	case err != nil:
		return err
	case st.Mode().IsRegular():
		info.Exists = true
		if conditions.IfMatch != nil {
			if sc := b.readSidecar(bucket, key); sc.describes(st) {
				info.Hash = sc.Hash
			} else if info.Hash, err = md5File(final); err != nil {
				return err
			}
		}
	}
	return gofakes3.CheckPutConditions(conditions, info)
}

func md5File(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// makeRoomLocked creates the directories above final, key's file. Keys are paths here, so "a" and
// "a/b" cannot both be objects, as they can in S3: the second is refused with a message saying
// why. A directory at final that objects have left empty is removed.
func (b *dirBackend) makeRoomLocked(key, final string) error {
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		if isNotDir(err) || errors.Is(err, fs.ErrExist) {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument,
				"key %q cannot be stored: a key it starts with, followed by '/', holds an object, and this endpoint stores keys as file paths", key)
		}
		return err
	}
	if st, err := os.Lstat(final); err == nil && st.IsDir() {
		if err := os.Remove(final); err != nil {
			return gofakes3.ErrorMessagef(gofakes3.ErrInvalidArgument,
				"key %q cannot be stored: keys starting with %q exist, and this endpoint stores keys as file paths", key, key+"/")
		}
	}
	return nil
}

// DeleteObject implements gofakes3.Backend: an absent key is not an error. Directories that the
// deletion leaves empty stay; listings skip them.
func (b *dirBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	return gofakes3.ObjectDeleteResult{}, b.deleteObject(bucket, key)
}

func (b *dirBackend) deleteObject(bucket, key string) error {
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := os.Lstat(p)
	if isAbsent(err) || (err == nil && st.IsDir()) {
		if err := b.requireBucket(bucket); err != nil {
			return err
		}
		return nil
	} else if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !isAbsent(err) {
		return err
	}
	if err := os.Remove(b.sidecarPath(bucket, key)); err != nil && !isAbsent(err) {
		return err
	}
	return nil
}

// DeleteMulti implements gofakes3.Backend.
func (b *dirBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	var result gofakes3.MultiDeleteResult
	if err := b.requireBucket(bucket); err != nil {
		return result, err
	}
	for _, key := range keys {
		if err := b.deleteObject(bucket, key); err != nil {
			res := gofakes3.ErrorResultFromError(err)
			res.Key = key
			result.Error = append(result.Error, res)
		} else {
			result.Deleted = append(result.Deleted, gofakes3.ObjectID{Key: key})
		}
	}
	return result, nil
}

// CopyObject implements gofakes3.Backend. The copy keeps the source's MD5 rather than computing it
// again.
func (b *dirBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	f, st, sc, err := b.lookup(srcBucket, srcKey, true)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	defer f.Close()
	if err := b.put(dstBucket, dstKey, meta, f, st.Size(), nil, func() []byte { return sc.Hash }); err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	return gofakes3.CopyObjectResult{ETag: gofakes3.FormatETag(sc.Hash), LastModified: gofakes3.NewContentTime(time.Now())}, nil
}
