//go:build !unix

package segstore

import "time"

// processCPU is not measured here: benchmarks report no cpu-ms/op.
func processCPU() (time.Duration, bool) { return 0, false }
