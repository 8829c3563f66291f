// Package kwiretest builds Kafka v2 record batches for tests, as clients write them and as hostile ones
// do. It is imported by tests only; it depends on nothing of StreamHouse (not even kwire, so that kwire's
// own tests can use it), only on franz-go and the compressors franz-go uses.
package kwiretest
