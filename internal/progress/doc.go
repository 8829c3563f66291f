// Package progress draws a one-line status of long command-line work (a produce from a large file,
// an offset reset over many partitions, a benchmark, a soak) on a terminal, redrawn in place.
//
// It owns nothing but that line: where the output is not a terminal (a pipe, a file, CI logs) a Line
// writes nothing at all, so that logs stay clean and scripts see the same output as before. It must not
// import any other StreamHouse package; the commands and the e2e tools import it.
package progress
