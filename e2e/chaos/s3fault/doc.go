// Package s3fault is the chaos suite's S3 fault layer: an HTTP reverse proxy in front of an
// S3-compatible endpoint that answers a chosen share of requests with 503 SlowDown or 500
// InternalError, as S3 does under load, or stalls them before passing them on (a latency spike).
//
// It knows the S3 error format and nothing of StreamHouse.
package s3fault
