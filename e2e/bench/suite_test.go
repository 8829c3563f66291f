package main

import "testing"

// The median run is a measured run, all its figures together: the middle one by MiB/s, the lower of
// the middle two of an even number.
func TestMedianRun(t *testing.T) {
	run := func(mibps, puts float64) throughputResult { return throughputResult{mibps: mibps, puts: puts} }
	for _, c := range []struct {
		name string
		runs []throughputResult
		want throughputResult
	}{
		{"one", []throughputResult{run(5, 1)}, run(5, 1)},
		{"odd", []throughputResult{run(9, 1), run(3, 2), run(6, 3)}, run(6, 3)},
		{"even", []throughputResult{run(9, 1), run(3, 2), run(6, 3), run(7, 4)}, run(6, 3)},
		{"ties keep run order", []throughputResult{run(4, 1), run(4, 2), run(4, 3)}, run(4, 2)},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := append([]throughputResult(nil), c.runs...)
			got := medianRun(c.runs)
			if got.mibps != c.want.mibps || got.puts != c.want.puts {
				t.Errorf("medianRun = %v MiB/s (puts %v), want %v (puts %v)", got.mibps, got.puts, c.want.mibps, c.want.puts)
			}
			for i := range before {
				if before[i].mibps != c.runs[i].mibps || before[i].puts != c.runs[i].puts {
					t.Fatalf("medianRun reordered its argument")
				}
			}
		})
	}
}
