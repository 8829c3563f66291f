package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeValue is a byte count flag: plain bytes (4194304) or a size with a unit (4MiB, 64KiB, 1.5GiB;
// K, M, G, T alone are binary too; KB, MB, GB, TB are decimal).
type sizeValue struct{ p *int64 }

func (v sizeValue) String() string {
	if v.p == nil {
		return ""
	}
	return formatSize(*v.p)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

var errSize = errors.New("want bytes or a size such as 64KiB, 4MiB, 1GiB")

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, errSize
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("%w (out of range)", errSize)
		}
		return n * int64(mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, errSize
	}
	if b := f * mult; b < math.MaxInt64 {
		return int64(b), nil
	}
	return 0, fmt.Errorf("%w (out of range)", errSize)
}

// formatSize writes n with the largest binary unit that divides it: 4194304 → 4MiB.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// sizeRangeValue is a size flag (sizeValue) with bounds.
type sizeRangeValue struct {
	p        *int64
	min, max int64
}

func (v sizeRangeValue) String() string { return sizeValue{v.p}.String() }

func (v sizeRangeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("want a size from %s to %s, such as 4MiB", formatSize(v.min), formatSize(v.max))
	}
	*v.p = n
	return nil
}

// size32Value is a size flag (sizeValue) kept in an int32, as Kafka's frame sizes are.
type size32Value struct{ p *int32 }

func (v size32Value) String() string {
	if v.p == nil {
		return ""
	}
	return formatSize(int64(*v.p))
}

func (v size32Value) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n <= 0 || n > math.MaxInt32 {
		return fmt.Errorf("want a size from 1 to %s", formatSize(math.MaxInt32))
	}
	*v.p = int32(n)
	return nil
}

// int32Value is an int32 flag (partition counts and numbers are int32 in Kafka).
type int32Value struct{ p *int32 }

func (v int32Value) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatInt(int64(*v.p), 10)
}

func (v int32Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return errors.New("want a 32-bit integer")
	}
	*v.p = int32(n)
	return nil
}

// atLeastValue is an int flag with a lower bound.
type atLeastValue struct {
	p   *int
	min int
}

func (v atLeastValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v atLeastValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < v.min {
		return fmt.Errorf("want an integer of at least %d", v.min)
	}
	*v.p = n
	return nil
}

// enumValue is a string flag restricted to a few values.
type enumValue struct {
	p       *string
	allowed []string
}

func (v enumValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v enumValue) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, a := range v.allowed {
		if s == a {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(v.allowed, ", "))
}

// configsValue is a repeatable key=value flag.
type configsValue struct{ p *map[string]string }

func (v configsValue) String() string {
	if v.p == nil || len(*v.p) == 0 {
		return ""
	}
	var parts []string
	for k, val := range *v.p {
		parts = append(parts, k+"="+val)
	}
	return strings.Join(parts, ",")
}

func (v configsValue) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if k = strings.TrimSpace(k); !ok || k == "" {
		return errors.New("want key=value")
	}
	if *v.p == nil {
		*v.p = map[string]string{}
	}
	(*v.p)[k] = val
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// millisValue is a duration flag given in milliseconds, as Kafka's *.ms settings are; -1 (any negative)
// means forever and is kept as -1.
type millisValue struct{ p *time.Duration }

func (v millisValue) String() string {
	if v.p == nil {
		return ""
	}
	if *v.p < 0 {
		return "-1"
	}
	return strconv.FormatInt(v.p.Milliseconds(), 10)
}

func (v millisValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < -1 || n > math.MaxInt64/int64(time.Millisecond) {
		return errors.New("want milliseconds, or -1 for forever")
	}
	*v.p = time.Duration(n) * time.Millisecond
	if n < 0 {
		*v.p = -1
	}
	return nil
}

// retentionBytesValue is a byte count that may be -1 (no limit), or a size such as 10GiB.
type retentionBytesValue struct{ p *int64 }

func (v retentionBytesValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v retentionBytesValue) Set(s string) error {
	if strings.TrimSpace(s) == "-1" {
		*v.p = -1
		return nil
	}
	return sizeValue{v.p}.Set(s)
}
