package segstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Disk is a Store on a local directory: key "a/b" is the file <dir>/a/b.
//
// Put writes a temporary file in <dir>/.tmp, fsyncs it and then hard-links it into place. link(2),
// unlike rename(2), fails if the target exists, so publishing is atomic and never overwrites, with no
// window between an existence check and the write. Readers therefore never see a partial object.
// A crash can leave files in <dir>/.tmp; they are never read and can be removed.
//
// Because keys are paths, Disk cannot hold both "a" and "a/b"; the second Put fails.
type Disk struct {
	dir string
	tmp string
}

var _ Store = (*Disk)(nil)

// NewDisk returns a Store on dir, creating dir if needed.
func NewDisk(dir string) (*Disk, error) {
	if dir == "" {
		return nil, errors.New("disk: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	d := &Disk{dir: abs, tmp: filepath.Join(abs, ".tmp")}
	if err := os.MkdirAll(d.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	return d, nil
}

func (d *Disk) path(key string) string {
	return filepath.Join(d.dir, filepath.FromSlash(key))
}

// Put implements Writer.
func (d *Disk) Put(ctx context.Context, key string, data ...[]byte) error {
	return d.put(ctx, OpPut, key, newPartsReader(data))
}

// PutReader implements Writer: r goes to the temporary file as it is read.
func (d *Disk) PutReader(ctx context.Context, key string, size int64, r io.Reader) error {
	if err := validateSize(key, size); err != nil {
		return err
	}
	return d.put(ctx, OpPutStream, key, newExactReader(ctx, r, size))
}

// put writes src to a temporary file and links it into place as key.
func (d *Disk) put(ctx context.Context, op, key string, src io.Reader) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := d.path(key)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("disk: %s %q: %w", op, key, err)
	}
	tmp, err := writeTemp(d.tmp, src)
	if err != nil {
		return fmt.Errorf("disk: %s %q: %w", op, key, err)
	}
	defer os.Remove(tmp) // after a successful link this only drops the temporary name
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("disk: %s %q: %w", op, key, ErrExists)
		}
		return fmt.Errorf("disk: %s %q: %w", op, key, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("disk: %s %q: %w", op, key, err)
	}
	return nil
}

// writeTemp writes what src holds to a new file in dir, durably, and returns its name.
func writeTemp(dir string, src io.Reader) (name string, err error) {
	f, err := os.CreateTemp(dir, "put-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Through a buffer: a flush's object has a part per partition, often small.
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.Copy(w, src); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// open opens key for reading and returns its size. A directory is an absent key.
func (d *Disk) open(ctx context.Context, op, key string) (*os.File, int64, error) {
	if err := validateKey(key); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, 0, fmt.Errorf("disk: %s %q: %w", op, key, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("disk: %s %q: %w", op, key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("disk: %s %q: %w", op, key, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("disk: %s %q: %w", op, key, ErrNotFound)
	}
	return f, st.Size(), nil
}

// Get implements Reader.
func (d *Disk) Get(ctx context.Context, key string) ([]byte, error) {
	f, size, err := d.open(ctx, OpGet, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("disk: get %q: %w", key, err)
	}
	return buf, nil
}

// GetRange implements Reader.
func (d *Disk) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := validateRange(key, off, length); err != nil {
		return nil, err
	}
	f, size, err := d.open(ctx, OpGetRange, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if off+length > size {
		return nil, shortObject(key, off, length, size)
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("disk: get_range %q: %w", key, err)
	}
	return buf, nil
}

// Delete implements Store. Empty directories are left behind: removing them would race with a
// concurrent Put creating a key in them.
func (d *Disk) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := d.path(key)
	st, err := os.Lstat(p)
	if err != nil || st.IsDir() {
		if err == nil || errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	return nil
}

// List implements Store.
func (d *Disk) List(ctx context.Context, prefix string) ([]string, error) {
	objects, err := d.ListObjects(ctx, prefix)
	return objectKeys(objects), err
}

// ListObjects implements Store. It walks only the directory named by prefix's last '/'.
func (d *Disk) ListObjects(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root := d.dir
	if i := strings.LastIndexByte(prefix, '/'); i > 0 && validateKey(prefix[:i]) == nil {
		root = d.path(prefix[:i])
	}
	var objects []ObjectInfo
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if strings.HasPrefix(e.Name(), ".") && p != root {
			return skip(e) // .tmp and anything no key can name
		}
		if e.IsDir() {
			return ctx.Err()
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read
		} else if err != nil {
			return err
		}
		objects = append(objects, ObjectInfo{Key: key, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk: list %q: %w", prefix, err)
	}
	slices.SortFunc(objects, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return objects, nil
}

func skip(e fs.DirEntry) error {
	if e.IsDir() {
		return fs.SkipDir
	}
	return nil
}

// Check implements Store: the directory must exist and accept a new file.
func (d *Disk) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.tmp, "check-*")
	if err != nil {
		return fmt.Errorf("disk: directory %s is not usable: %w", d.dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// isNotDir reports whether err is ENOTDIR: a path component of the key is a file, so the key is absent.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}
