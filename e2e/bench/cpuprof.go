package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// cpuMeter measures one run's CPU: the process's (getrusage: everything in it, clients and kfake
// included) and, from a CPU profile whose samples carry the component and target labels, each
// component's share.
type cpuMeter struct {
	buf   bytes.Buffer
	start time.Time
	ru    syscall.Rusage
	on    bool
}

func startCPU() *cpuMeter {
	m := &cpuMeter{start: time.Now()}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &m.ru)
	m.on = pprof.StartCPUProfile(&m.buf) == nil
	return m
}

// cpuUsage is what a cpuMeter measured.
type cpuUsage struct {
	wall    float64            // seconds
	process float64            // CPU seconds of the whole process
	byLabel map[string]float64 // CPU seconds by "component/target"; "unlabelled" for the runtime's own
	profile []byte             // the raw profile, for --profile-dir
}

func (m *cpuMeter) stop() cpuUsage {
	if m.on {
		pprof.StopCPUProfile()
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := cpuUsage{wall: time.Since(m.start).Seconds(), process: rusageCPU(ru) - rusageCPU(m.ru), profile: m.buf.Bytes()}
	if m.on {
		u.byLabel, _ = cpuByLabel(m.buf.Bytes())
	}
	return u
}

// component is the CPU seconds of one component of one target.
func (u cpuUsage) component(component, target string) float64 { return u.byLabel[component+"/"+target] }

func rusageCPU(ru syscall.Rusage) float64 {
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// peakRSS is the process's peak resident set (getrusage's ru_maxrss, KiB on Linux), in MiB.
func peakRSS() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

// cpuByLabel sums a CPU profile's samples (profile.proto, gzipped) by their component and target
// labels. It reads only what it needs of the format: sample types, samples with their values and
// labels, and the string table.
func cpuByLabel(gz []byte) (map[string]float64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	type sample struct {
		values []int64
		labels [][2]int64 // key, str
	}
	var types []int64 // type string index of each value
	var samples []sample
	var strs []string
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1: // sample_type
			return eachField(v, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
				if n == 1 {
					types = append(types, int64(x))
				}
				return nil
			})
		case 2: // sample
			var s sample
			err := eachField(v, func(n protowire.Number, t protowire.Type, w []byte, x uint64) error {
				switch {
				case n == 2 && t == protowire.BytesType: // packed values
					for len(w) > 0 {
						y, k := protowire.ConsumeVarint(w)
						if k < 0 {
							return protowire.ParseError(k)
						}
						s.values, w = append(s.values, int64(y)), w[k:]
					}
				case n == 2:
					s.values = append(s.values, int64(x))
				case n == 3: // label
					var l [2]int64
					err := eachField(w, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) error {
						if n == 1 || n == 2 {
							l[n-1] = int64(x)
						}
						return nil
					})
					if err != nil {
						return err
					}
					s.labels = append(s.labels, l)
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 6: // string_table
			strs = append(strs, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	str := func(i int64) string {
		if i >= 0 && int(i) < len(strs) {
			return strs[i]
		}
		return ""
	}
	cpu := -1
	for i, t := range types {
		if str(t) == "cpu" {
			cpu = i
		}
	}
	if cpu < 0 {
		return nil, fmt.Errorf("no cpu values in the profile")
	}
	out := map[string]float64{}
	for _, s := range samples {
		if cpu >= len(s.values) {
			continue
		}
		comp, tgt := "", ""
		for _, l := range s.labels {
			switch str(l[0]) {
			case "component":
				comp = str(l[1])
			case "target":
				tgt = str(l[1])
			}
		}
		key := "unlabelled"
		if comp != "" {
			key = comp + "/" + tgt
		}
		out[key] += float64(s.values[cpu]) / 1e9
	}
	return out, nil
}

// eachField calls fn for each field of one protobuf message: v holds a length-delimited field's bytes,
// x a varint or fixed field's value.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// writeProfile keeps a run's CPU profile in dir (nothing when dir is empty).
func writeProfile(dir, name string, profile []byte) error {
	if dir == "" || len(profile) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(dir+"/"+name+".pprof", profile, 0o644)
}
