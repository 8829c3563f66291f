package extcache

import (
	"cmp"
	"slices"
	"testing"

	"github.com/streamhouse/streamhouse/coord"
)

func TestCoalesce(t *testing.T) {
	x := func(o string, pos int64, n int32) coord.Extent { return coord.Extent{Object: o, Pos: pos, Len: n} }
	const maxSpan = 1000
	tests := map[string]struct {
		in   []coord.Extent
		span int64 // maxSpan if 0
		want [][]coord.Extent
	}{
		"one": {[]coord.Extent{x("a", 32, 10)}, 0, [][]coord.Extent{{x("a", 32, 10)}}},
		"adjacent, in any order": {
			[]coord.Extent{x("a", 52, 10), x("a", 32, 10), x("a", 42, 10)}, 0,
			[][]coord.Extent{{x("a", 32, 10), x("a", 42, 10), x("a", 52, 10)}},
		},
		"objects in the order they first appear": {
			[]coord.Extent{x("b", 32, 10), x("a", 32, 10), x("b", 42, 10)}, 0,
			[][]coord.Extent{{x("b", 32, 10), x("b", 42, 10)}, {x("a", 32, 10)}},
		},
		"a gap within the limit": {
			[]coord.Extent{x("a", 0, 10), x("a", 10+coalesceMaxGap, 10)}, 2 * coalesceMaxGap,
			[][]coord.Extent{{x("a", 0, 10), x("a", 10+coalesceMaxGap, 10)}},
		},
		"a gap past the limit": {
			[]coord.Extent{x("a", 0, 10), x("a", 11+coalesceMaxGap, 10)}, 2 * coalesceMaxGap,
			[][]coord.Extent{{x("a", 0, 10)}, {x("a", 11+coalesceMaxGap, 10)}},
		},
		"a run ends at the span": {
			[]coord.Extent{x("a", 0, 400), x("a", 400, 400), x("a", 800, 200), x("a", 1000, 1)}, 0,
			[][]coord.Extent{{x("a", 0, 400), x("a", 400, 400), x("a", 800, 200)}, {x("a", 1000, 1)}},
		},
		"an extent longer than the span is read alone": {
			[]coord.Extent{x("a", 0, 10), x("a", 10, 2*maxSpan), x("a", 10+2*maxSpan, 10)}, 0,
			[][]coord.Extent{{x("a", 0, 10)}, {x("a", 10, 2*maxSpan)}, {x("a", 10+2*maxSpan, 10)}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			limit := cmp.Or(tc.span, maxSpan)
			got := Coalesce(tc.in, limit)
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("coalesce(%v) =\n%v, want\n%v", tc.in, got, tc.want)
			}
			for _, run := range got {
				if from, to := Span(run); len(run) > 1 && to-from > limit {
					t.Errorf("run %v spans %d bytes, over %d", run, to-from, limit)
				}
			}
		})
	}
}
