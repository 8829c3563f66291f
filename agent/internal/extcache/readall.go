package extcache

import (
	"context"
	"errors"
	"sync"

	"github.com/streamhouse/streamhouse/coord"
)

// readAllObjects bounds the objects ReadAll reads at once.
const readAllObjects = 16

// ReadAll returns the verified bytes of xs, extents of any objects, or an error: those of one object
// are read together (ReadObject), up to readAllObjects objects at a time.
func (r *Cache) ReadAll(ctx context.Context, xs []coord.Extent) ([][]byte, error) {
	byObject := map[string][]int{}
	var objects []string
	for i, x := range xs {
		if _, ok := byObject[x.Object]; !ok {
			objects = append(objects, x.Object)
		}
		byObject[x.Object] = append(byObject[x.Object], i)
	}
	out := make([][]byte, len(xs))
	errs := make([]error, len(objects))
	sem := make(chan struct{}, readAllObjects)
	var wg sync.WaitGroup
	for j, o := range objects {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			idx := byObject[o]
			of := make([]coord.Extent, len(idx))
			for k, i := range idx {
				of[k] = xs[i]
			}
			data, es := r.ReadObject(ctx, of)
			for k, i := range idx {
				out[i] = data[k]
			}
			errs[j] = errors.Join(es...)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
