package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultPeerTimeout bounds one agent's answer to a fan-in: an agent slower than that is listed as
// unreachable, and the page shows the others' sum.
const DefaultPeerTimeout = time.Second

// maxPeerRatesBytes bounds what the console reads of another agent's /api/rates (about 50 KiB at
// five minutes of six series).
const maxPeerRatesBytes = 1 << 20

// Agent states in a cluster answer of /api/rates.
const (
	peerOK     = "ok"
	peerNoHTTP = "no HTTP address registered"
)

// agentRates is one agent's part in the cluster's rates.
type agentRates struct {
	ID    string `json:"id"`
	State string `json:"state"` // peerOK, or why its rates are missing
}

// clusterRates is /api/rates?scope=cluster: this agent's rates and those of every other registered
// agent, asked at once, summed per second. One answer serves every browser for a second (the agents
// sample once a second): however many pages are open, each agent is asked at most once a second by
// this one, and a page that asks while a fan-in runs waits for it.
func (c *Console) clusterRates(ctx context.Context) ratesJSON {
	c.clusterMu.Lock()
	defer c.clusterMu.Unlock()
	if now := c.cfg.Now(); !c.clusterAt.IsZero() && now.Sub(c.clusterAt) < sampleEvery && !now.Before(c.clusterAt) {
		return c.clusterLast
	}
	// The answer serves other pages too: one page closing must not cancel it (PeerTimeout bounds it).
	c.clusterLast, c.clusterAt = c.fanIn(context.WithoutCancel(ctx)), c.cfg.Now()
	return c.clusterLast
}

// fanIn asks every other registered agent for its rates and sums them with this agent's.
func (c *Console) fanIn(ctx context.Context) ratesJSON {
	var others []string
	urls := map[string]string{}
	for _, a := range c.cfg.View.Agents() {
		if a.ID != c.cfg.Self {
			others = append(others, a.ID)
			urls[a.ID] = a.HTTP
		}
	}
	slices.Sort(others)
	parts := make([]ratesJSON, len(others))
	states := make([]agentRates, len(others))
	var wg sync.WaitGroup
	for i, id := range others {
		states[i].ID = id
		if urls[id] == "" {
			states[i].State = peerNoHTTP
			continue
		}
		wg.Go(func() {
			r, err := c.peerRates(ctx, urls[id])
			parts[i], states[i].State = r, peerOK
			if err != nil {
				states[i].State = err.Error()
			}
		})
	}
	wg.Wait()
	out := sumRates(append(parts, c.rates.json()))
	out.Agents = append([]agentRates{{ID: c.cfg.Self, State: peerOK}}, states...)
	return out
}

// peerRates asks another agent for its own rates.
func (c *Console) peerRates(ctx context.Context, base string) (ratesJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/rates", nil)
	if err != nil {
		return ratesJSON{}, fmt.Errorf("bad HTTP address %q", base)
	}
	if c.cfg.Peer != nil {
		c.cfg.Peer(req)
	}
	resp, err := c.cfg.PeerClient.Do(req)
	if err != nil {
		return ratesJSON{}, fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ratesJSON{}, fmt.Errorf("unreachable: HTTP %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerRatesBytes))
	if err != nil {
		return ratesJSON{}, fmt.Errorf("unreachable: %w", err)
	}
	return decodePeerRates(b)
}

// decodePeerRates reads another agent's /api/rates: the times and, per series, as many points.
func decodePeerRates(b []byte) (ratesJSON, error) {
	var r ratesJSON
	if err := json.Unmarshal(b, &r); err != nil {
		return ratesJSON{}, fmt.Errorf("malformed rates: %w", err)
	}
	for _, s := range r.Series {
		if len(s.Points) != len(r.Times) {
			return ratesJSON{}, fmt.Errorf("malformed rates: series %q has %d points for %d times", s.Key, len(s.Points), len(r.Times))
		}
	}
	if !slices.IsSorted(r.Times) {
		return ratesJSON{}, fmt.Errorf("malformed rates: times out of order")
	}
	return r, nil
}

// sumRates adds up agents' rates per wall-clock second. Each agent samples on its own second, so a
// second takes each agent's latest point at or before it (a sample that came late, or two in one
// second, neither drops nor doubles an agent's rate); seconds before an agent's first point count it
// as 0. The sum ends at the latest second every agent with points has reached: a later one would lack
// the slower agents and dip.
func sumRates(parts []ratesJSON) ratesJSON {
	var secs []int64
	end, any := int64(0), false
	for _, p := range parts {
		if len(p.Times) == 0 {
			continue
		}
		if last := second(p.Times[len(p.Times)-1]); !any || last < end {
			end = last
		}
		any = true
		for _, t := range p.Times {
			secs = append(secs, second(t))
		}
	}
	slices.Sort(secs)
	secs = slices.Compact(secs)
	if i, _ := slices.BinarySearch(secs, end+1); any {
		secs = secs[:i]
	}
	if over := len(secs) - keepSamples; over > 0 {
		secs = secs[over:]
	}
	out := ratesJSON{Times: make([]int64, len(secs))}
	for i, s := range secs {
		out.Times[i] = s * 1000
	}
	for _, s := range series {
		out.Series = append(out.Series, seriesJSON{Key: s.Key, Title: s.Title, Unit: s.Unit, Points: make([]float64, len(secs))})
	}
	for _, p := range parts {
		for si := range out.Series {
			points := pointsOf(p, out.Series[si].Key)
			if points == nil {
				continue
			}
			j := 0
			for i, s := range secs {
				for j < len(p.Times) && second(p.Times[j]) <= s {
					j++
				}
				if j > 0 {
					out.Series[si].Points[i] += points[j-1]
				}
			}
		}
	}
	return out
}

func second(unixMs int64) int64 { return unixMs / 1000 }

func pointsOf(r ratesJSON, key string) []float64 {
	for _, s := range r.Series {
		if s.Key == key && len(s.Points) == len(r.Times) {
			return s.Points
		}
	}
	return nil
}
