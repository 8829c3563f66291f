package s3fault

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Kind is what happens to a request the rule picks.
type Kind int

const (
	// SlowDown answers 503 with S3's SlowDown error: clients back off and retry.
	SlowDown Kind = iota
	// InternalError answers 500 with S3's InternalError: clients retry.
	InternalError
	// Stall holds the request for Rule.Stall, then passes it on (unless the client gave up).
	Stall
)

func (k Kind) String() string {
	switch k {
	case SlowDown:
		return "503 SlowDown"
	case InternalError:
		return "500 InternalError"
	case Stall:
		return "stall"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Rule says which requests fail and how. The zero Rule touches nothing.
type Rule struct {
	Share   float64       // of requests picked, 0 to 1
	Kind    Kind          // what a picked request gets
	Stall   time.Duration // how long Stall holds a request
	Methods []string      // only requests with these methods (PUT, GET, …); empty: all
}

func (r Rule) String() string {
	if r.Share <= 0 {
		return "none"
	}
	s := fmt.Sprintf("%.0f%% of requests: %v", r.Share*100, r.Kind)
	if r.Kind == Stall {
		s += fmt.Sprintf(" %v", r.Stall)
	}
	if len(r.Methods) > 0 {
		s += fmt.Sprintf(" (%v)", r.Methods)
	}
	return s
}

// Validate rejects a rule that cannot be applied.
func (r Rule) Validate() error {
	if r.Share < 0 || r.Share > 1 {
		return fmt.Errorf("s3fault: share %v is not between 0 and 1", r.Share)
	}
	if r.Kind == Stall && r.Stall <= 0 && r.Share > 0 {
		return errors.New("s3fault: a stall rule needs a duration")
	}
	return nil
}

// Layer is an http.Handler that forwards to an S3 endpoint through the current Rule.
type Layer struct {
	next http.Handler

	mu       sync.Mutex
	rule     Rule
	rng      *rand.Rand
	injected map[Kind]int64
	passed   int64
}

// New returns a layer in front of target ("http://host:port"); seed makes the choice of requests
// repeatable for the same sequence of requests.
func New(target string, seed uint64) (*Layer, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("s3fault: target %q is not an http URL", target)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// A client that gives up (an agent killed mid-request) is not news: answer 502, log nothing.
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	return &Layer{next: rp, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), injected: map[Kind]int64{}}, nil
}

// Set replaces the rule.
func (l *Layer) Set(r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	l.rule = r
	l.mu.Unlock()
	return nil
}

// Clear removes the rule: every request passes.
func (l *Layer) Clear() { _ = l.Set(Rule{}) }

// Rule is the current rule.
func (l *Layer) Rule() Rule {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rule
}

// Injected is how many requests got each kind of fault.
func (l *Layer) Injected() map[Kind]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[Kind]int64, len(l.injected))
	for k, v := range l.injected {
		m[k] = v
	}
	return m
}

// pick decides the fate of one request.
func (l *Layer) pick(method string) (Kind, time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rule
	hit := r.Share > 0 && (len(r.Methods) == 0 || slices.Contains(r.Methods, method)) && l.rng.Float64() < r.Share
	if !hit {
		l.passed++
		return 0, 0, false
	}
	l.injected[r.Kind]++
	return r.Kind, r.Stall, true
}

func (l *Layer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	kind, stall, hit := l.pick(req.Method)
	if !hit {
		l.next.ServeHTTP(w, req)
		return
	}
	switch kind {
	case SlowDown:
		writeError(w, req, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case InternalError:
		writeError(w, req, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Stall:
		t := time.NewTimer(stall)
		defer t.Stop()
		select {
		case <-t.C:
			l.next.ServeHTTP(w, req)
		case <-req.Context().Done(): // the client gave up: nothing reaches the store
		}
	}
}

// writeError answers as S3 does: an XML error document, and the request's body left unread.
func writeError(w http.ResponseWriter, req *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Connection", "close") // the body was not read: the connection cannot be reused
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>chaos</RequestId></Error>`,
		code, msg, req.URL.Path)
}
