package auth

import "time"

// sampledRate is Kafka's Rate over a SampledStat: the sum of up to num samples, each covering a
// window of at least size from its start, divided by the span they cover (at least num-1 windows).
// Samples older than num windows are reset. Not safe for concurrent use.
type sampledRate struct {
	samples []rateSample
	current int
	used    time.Time // last record, for expiry
}

type rateSample struct {
	start time.Time
	value float64
}

// record adds v at now, starting a new sample when the current one's window is over.
func (r *sampledRate) record(v float64, now time.Time, num int, size time.Duration) {
	r.used = now
	if len(r.samples) == 0 {
		r.samples = append(r.samples, rateSample{start: now})
	}
	if now.Sub(r.samples[r.current].start) >= size {
		r.current = (r.current + 1) % num
		if r.current >= len(r.samples) {
			r.samples = append(r.samples, rateSample{start: now})
		} else {
			r.samples[r.current] = rateSample{start: now}
		}
	}
	r.samples[r.current].value += v
}

// purge resets the samples that ended a whole span (num windows) ago.
func (r *sampledRate) purge(now time.Time, num int, size time.Duration) {
	for i := range r.samples {
		if now.Sub(r.samples[i].start) >= time.Duration(num)*size {
			r.samples[i] = rateSample{start: now}
		}
	}
}

// window is the span the rate is measured over, as Kafka's Rate.windowSize: from the oldest
// sample's start to now, but at least num-1 whole windows, and at least 1ms.
func (r *sampledRate) window(now time.Time, num int, size time.Duration) time.Duration {
	r.purge(now, num, size)
	oldest := now
	for _, s := range r.samples {
		if s.start.Before(oldest) {
			oldest = s.start
		}
	}
	elapsed := now.Sub(oldest)
	if full, least := int(elapsed/size), num-1; full < least {
		elapsed += time.Duration(least-full) * size
	}
	return max(elapsed, time.Millisecond)
}

// rate is the measured rate, per second, and the span it was measured over.
func (r *sampledRate) rate(now time.Time, num int, size time.Duration) (float64, time.Duration) {
	w := r.window(now, num, size)
	total := 0.0
	for _, s := range r.samples {
		total += s.value
	}
	return total / w.Seconds(), w
}
