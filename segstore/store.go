package segstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Sentinel errors that callers act on. Implementations wrap them with details; test with errors.Is.
var (
	ErrNotFound = errors.New("segstore: object not found")
	ErrExists   = errors.New("segstore: object already exists")
	ErrCorrupt  = errors.New("segstore: corrupt object")
)

// Operation names, shared by the Metrics labels and Faulty.SetFault. A streamed put has its own: its
// latency (a merge's object of up to a GiB) says nothing about a flush's. List and ListObjects are
// the same request.
const (
	OpPut       = "put"
	OpPutStream = "put_stream"
	OpGet       = "get"
	OpGetRange  = "get_range"
	OpDelete    = "delete"
	OpList      = "list"
	OpCheck     = "check"
)

var allOps = []string{OpPut, OpPutStream, OpGet, OpGetRange, OpDelete, OpList, OpCheck}

// Reader reads objects. Returned slices belong to the caller (the agent patches batch headers in
// place), so implementations never return memory they keep.
type Reader interface {
	// GetRange returns length bytes starting at off. ErrNotFound if absent; an ErrCorrupt-wrapped
	// error if the object ends before off+length (an index entry pointing past the end of its
	// object is corruption from the reader's point of view). off must be >= 0 and length > 0.
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	// Get returns the whole object. ErrNotFound if absent.
	Get(ctx context.Context, key string) ([]byte, error)
}

// Writer writes objects.
type Writer interface {
	// Put stores the concatenation of parts under key (a segment object goes as its head and its
	// chunks' data, never copied into one buffer); never overwrites: ErrExists if key exists (S3:
	// If-None-Match: "*"). Put does not retain parts after it returns, so callers may reuse them.
	Put(ctx context.Context, key string, parts ...[]byte) error
	// PutReader stores the size bytes that r yields under key, without holding them in memory (S3
	// and Disk stream them: a merge's object goes from its sources' GETs to one PUT); never
	// overwrites: ErrExists as Put. r must yield exactly size bytes: if it ends early (the error
	// wraps io.ErrUnexpectedEOF), holds more, or fails (its error is wrapped), nothing is stored.
	//
	// S3 cannot retry a PUT whose body it cannot rewind: unless r is an io.ReadSeeker, a failed
	// attempt is the caller's to retry, under a new key (the failed one may have landed: an orphan
	// for GC).
	PutReader(ctx context.Context, key string, size int64, r io.Reader) error
}

// ObjectInfo is a listed object.
type ObjectInfo struct {
	Key  string
	Size int64
}

// Store is a complete object store.
type Store interface {
	Reader
	Writer
	// Delete removes key; an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys starting with prefix, in ascending byte order.
	List(ctx context.Context, prefix string) ([]string, error)
	// ListObjects is List with each object's size (S3: the same ListObjectsV2 pages).
	ListObjects(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Check verifies the store is reachable and usable (S3: HeadBucket). Its error reads well on
	// one line, for operators.
	Check(ctx context.Context) error
}

// maxKeyLen is S3's limit on key length.
const maxKeyLen = 1024

// validateKey enforces the key rules shared by every Store, so that a key valid for Memory is valid
// for Disk and S3 alike: '/'-separated, non-empty path components, none starting with '.' (Disk keeps
// its temporary files in a dot-directory, and "." and ".." must never escape it).
func validateKey(key string) error {
	if key == "" || len(key) > maxKeyLen || !utf8.ValidString(key) || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("segstore: invalid key %q", key)
	}
	for part := range strings.SplitSeq(key, "/") {
		if part == "" || part[0] == '.' {
			return fmt.Errorf("segstore: invalid key %q: empty or dot-leading path component", key)
		}
	}
	return nil
}

func validateSize(key string, size int64) error {
	if size < 0 {
		return fmt.Errorf("segstore: invalid size %d for %q", size, key)
	}
	return nil
}

// objectKeys returns the keys of objects.
func objectKeys(objects []ObjectInfo) []string {
	if objects == nil {
		return nil
	}
	out := make([]string, len(objects))
	for i, o := range objects {
		out[i] = o.Key
	}
	return out
}

func validateRange(key string, off, length int64) error {
	if off < 0 || length <= 0 || off > (1<<62)-length {
		return fmt.Errorf("segstore: invalid range off=%d length=%d for %q", off, length, key)
	}
	return nil
}

// shortObject is the error for a range that ends past the end of the object (size < 0: unknown).
func shortObject(key string, off, length, size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: range [%d, %d) of %q is past its end", ErrCorrupt, off, off+length, key)
	}
	return fmt.Errorf("%w: range [%d, %d) of %q is past its end (%d bytes)", ErrCorrupt, off, off+length, key, size)
}
