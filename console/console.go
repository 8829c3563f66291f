package console

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Defaults of Config.
const (
	// DefaultMaxEvents is how many recent failovers and agent departures the console remembers.
	DefaultMaxEvents = 200
	// DefaultGoneFor is how long an agent that left stays listed, as down.
	DefaultGoneFor = 10 * time.Minute
	// groupsFresh is how long one read of the consumer groups serves every page that asks.
	groupsFresh = time.Second
)

// Config wires a Console. View and Groups are required.
type Config struct {
	View   View
	Groups GroupStore
	// Metrics is the agent's registry, sampled for the live rates; nil: no charts.
	Metrics prometheus.Gatherer
	// Registerer takes the streamhouse_cluster_* gauges; nil: not exported.
	Registerer prometheus.Registerer
	// Self is the id of the agent serving the console, shown on every page.
	Self string
	// Middleware wraps every console handler: the hook for the HTTP port's authentication. nil: none.
	Middleware func(http.Handler) http.Handler
	// Peer prepares a request this console sends another agent for its rates (the cluster charts): it
	// adds what the other agent's HTTP port asks of a peer. nil: sent as is.
	Peer func(*http.Request)
	// PeerClient sends those requests (TLS settings for https peers); nil: http.DefaultClient's transport.
	PeerClient *http.Client
	// PeerTimeout bounds each agent's answer; 0: DefaultPeerTimeout.
	PeerTimeout time.Duration
	Logger      hclog.Logger
	// Now is the clock; nil: time.Now.
	Now       func() time.Time
	MaxEvents int           // 0: DefaultMaxEvents
	GoneFor   time.Duration // 0: DefaultGoneFor
}

// Console serves the pages. It is safe for concurrent use.
type Console struct {
	cfg   Config
	log   hclog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux

	events  *events
	created time.Time // the failovers page's "since"
	rates   *rates
	started atomic.Bool // Run took its first snapshot
	// sampleTick, when set (by tests), paces the rate samples instead of a ticker of sampleEvery.
	sampleTick <-chan time.Time

	clusterMu   sync.Mutex // one fan-in at a time; its answer serves for a second
	clusterAt   time.Time
	clusterLast ratesJSON

	groupsMu   sync.Mutex
	groupsAt   time.Time
	groupsLast []groupView
	groupsErr  error
}

// New checks cfg, parses the embedded templates and registers the cluster gauges. It starts nothing.
func New(cfg Config) (*Console, error) {
	if cfg.View == nil || cfg.Groups == nil {
		return nil, errors.New("console: a view and a group store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.GoneFor <= 0 {
		cfg.GoneFor = DefaultGoneFor
	}
	if cfg.PeerClient == nil {
		cfg.PeerClient = &http.Client{}
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = DefaultPeerTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: cfg.Logger.Named("console"), pages: pages,
		events: newEvents(cfg.MaxEvents, cfg.GoneFor), rates: newRates(cfg.Metrics, cfg.Now), created: cfg.Now()}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newClusterCollector(cfg.View)); err != nil {
			return nil, err
		}
	}
	c.mux = c.routes()
	return c, nil
}

// routes maps the console's paths; everything is GET (or HEAD): the console changes nothing.
func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.serveAgents)
	mux.HandleFunc("GET /topics", c.serveTopics)
	mux.HandleFunc("GET /topics/{topic}", c.serveTopic)
	mux.HandleFunc("GET /groups", c.serveGroups)
	mux.HandleFunc("GET /groups/{ns}/{group}", c.serveGroup)
	mux.HandleFunc("GET /failovers", c.serveFailovers)
	mux.HandleFunc("GET /api/rates", c.serveRates)
	static, _ := fs.Sub(staticFS, "static") // a constant path of the embedded tree: cannot fail
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	return mux
}

func (c *Console) runStarted() bool { return c.started.Load() }

// Handler is the console with Config.Middleware around it; mount it at "/".
func (c *Console) Handler() http.Handler {
	var h http.Handler = c.mux
	if c.cfg.Middleware != nil {
		h = c.cfg.Middleware(h)
	}
	return h
}
