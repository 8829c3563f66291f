package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/agent/internal/lifecycle"
	"github.com/streamhouse/streamhouse/agent/internal/txn"
	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// clusterID is reported to Kafka clients.
const clusterID = "streamhouse"

// objectStore is what the agent needs of segstore: writing flush objects and segments, reading them,
// and, for GC, listing and deleting them.
type objectStore interface {
	Put(ctx context.Context, key string, parts ...[]byte) error
	PutReader(ctx context.Context, key string, size int64, r io.Reader) error
	Get(ctx context.Context, key string) ([]byte, error)
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	ListObjects(ctx context.Context, prefix string) ([]segstore.ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	Check(ctx context.Context) error
}

// Agent is one StreamHouse agent. New wires it and starts nothing; Start binds its listeners, registers
// in etcd and serves; Shutdown hands its work over gracefully; Close stops it at once.
type Agent struct {
	cfg       Config
	log       hclog.Logger
	etcd      *coord.Client
	store     objectStore
	cache     *coord.Cache
	metrics   *metrics
	flusher   *flusher
	forwarder *forwarder
	remote    chan *remoteWork // sequencing forwarded by other agents
	reader    *extcache.Cache
	footers   *footerCache // decoded footers of partition segments
	// maintainer merges and expires the partitions this agent leads; gc collects garbage while this
	// agent holds the cluster's GC key (lifecycle.go).
	maintainer       *lifecycle.Maintainer
	gc               *lifecycle.GC
	lifecycleMetrics *lifecycle.Metrics
	etcdHealth       etcdHealth // etcd's alarms and this agent's last commit, for /readyz
	lead             *leadership
	acks             ackCount // produce answers not yet written (graceful shutdown waits for them)
	groups           *group.Coordinator
	txns             *txn.Coordinator // nil unless Config.Transactions

	// wrapSession lets in-package tests put a fault layer around the etcd session.
	wrapSession func(session) session
	// wrapListener lets in-package tests put a fault layer around the Kafka listener.
	wrapListener func(net.Listener) net.Listener
	// beforeHandle, when set by in-package tests, runs before each request is handled.
	beforeHandle func(kmsg.Request)

	// internalLn serves other agents (internal.go); internalAdvertised is its address in the
	// registration. secret is the cluster secret they prove (coord.ClusterSecret).
	internalLn         net.Listener
	internalAdvertised string
	secret             []byte

	kafkaLn net.Listener // the first Kafka listener's (sec.listeners)
	sec     agentSecurity
	// tlsMetrics counts certificate reloads of the TLS listeners (one per agent registry).
	tlsMetrics *auth.TLSMetrics
	listen     listenState
	conns      *connLimiter // max.connections, max.connections.per.ip
	budget     *byteBudget  // queued.max.request.bytes
	pids       *producerIDs // which producer ids InitProducerID handed out
	zones      zoneSet      // the zones of registered agents: the client_zone label values
	rateLog    *rateLog
	httpSrv    *http.Server
	httpLn     net.Listener
	scrape     scrapeHTTP  // --metrics-addr: /metrics on a listener of its own
	stopping   atomic.Bool // refuse new produce: a graceful shutdown is under way
	// lastRequest is when the last request arrived during a graceful shutdown (unix ns; see linger).
	lastRequest atomic.Int64
	redirected  atomic.Int64  // requests read during a graceful shutdown
	draining    chan struct{} // closed when Shutdown begins: wakes long-polling fetches
	drainOnce   sync.Once
	ready       atomic.Bool
	readyCheck  storeCheck // the object store check behind /readyz, cached

	runCtx    context.Context // lives from Start to Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
}

// New validates cfg and wires an agent over an etcd client and an object store. It starts nothing.
func New(cfg Config, etcd *coord.Client, store objectStore) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if etcd == nil || store == nil {
		return nil, errors.New("agent: etcd client and object store are required")
	}
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger.Named("agent").With("agent", cfg.ID),
		etcd:     etcd,
		store:    store,
		metrics:  newMetrics(cfg.Registerer),
		done:     make(chan struct{}),
		draining: make(chan struct{}),
		remote:   make(chan *remoteWork, 64),
		rateLog:  newRateLog(logEvery),
	}
	a.readyCheck.now = time.Now
	a.tlsMetrics = auth.NewTLSMetrics(cfg.Registerer)
	maxConns := cfg.MaxConnections
	if maxConns == 0 {
		maxConns = MaxConnectionsForFileLimit()
	}
	a.conns = newConnLimiter(maxConns, cfg.MaxConnectionsPerIP)
	a.budget = newByteBudget(cfg.QueuedMaxRequestBytes, a.metrics.requestBytes)
	a.cache = etcd.NewCache(a.log)
	a.pids = &producerIDs{view: a.cache.NextProducerID, read: etcd.NextProducerID}
	a.flusher = newFlusher(a)
	a.forwarder = newForwarder(a)
	a.reader = extcache.New(extcache.Config{MaxBytes: cfg.CacheBytes, MaxInFlight: cfg.MaxReadBytesInFlight, Store: store, Log: a.log,
		Go: func(fn func(context.Context)) { a.wg.Go(func() { fn(a.runCtx) }) }, Metrics: a.metrics.cacheMetrics()})
	a.footers = newFooterCache(footerCacheBlocks)
	a.groups = newGroupCoordinator(a)
	txns, err := newTxnCoordinator(a)
	if err != nil {
		return nil, err
	}
	a.txns = txns
	a.newLifecycle()
	a.lead = newLeadership(a)
	a.etcdHealth.metrics, a.etcdHealth.kick = newEtcdHealthMetrics(cfg.Registerer), make(chan struct{}, 1)
	return a, nil
}

// Start checks that the object store is reachable, binds the Kafka and HTTP listeners, registers the agent
// on its etcd session lease and starts serving. It returns once the agent is ready, or the first error.
func (a *Agent) Start(ctx context.Context) (err error) {
	if err := a.store.Check(ctx); err != nil {
		return err
	}
	if err = a.bindListeners(); err != nil {
		return err
	}
	if a.cfg.HTTPAddr != "" {
		if a.httpLn, err = net.Listen("tcp", a.cfg.HTTPAddr); err != nil {
			a.closeListeners()
			return fmt.Errorf("agent: http listener: %w", err)
		}
		if a.httpLn, err = a.secureHTTPListener(a.httpLn); err != nil {
			a.closeListeners()
			return err
		}
	}
	if err = a.listenInternal(); err == nil {
		err = a.listenMetrics()
	}
	if err != nil {
		a.closeListeners()
		for _, ln := range []net.Listener{a.httpLn, a.internalLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.runCtx, a.cancel = runCtx, cancel
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.wg.Go(func() {
		if err := a.cache.Run(runCtx); err != nil {
			a.fail(fmt.Errorf("agent: etcd watch: %w", err))
		}
	})
	select {
	case <-a.cache.Ready():
	case <-ctx.Done():
		return ctx.Err()
	case <-a.done:
		return a.Err()
	}
	if err := a.newSecurity(); err != nil {
		return err
	}
	if err := a.groups.EnsureTopic(ctx); err != nil {
		return fmt.Errorf("agent: create the offsets topic: %w", err)
	}
	if a.secret, err = a.etcd.ClusterSecret(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	if err := a.awaitSelf(ctx); err != nil {
		return err
	}
	a.wg.Go(func() { a.flusher.run(runCtx, &a.wg) })
	a.wg.Go(func() { a.runSequencer(runCtx) })
	a.wg.Go(func() { a.lead.run(runCtx) })
	a.wg.Go(func() { a.groups.Run(runCtx) })
	if a.txns != nil {
		a.wg.Go(func() { a.txns.Run(runCtx) })
	}
	a.wg.Go(func() { a.maintainer.Run(runCtx, a.cfg.MaintenanceInterval, maintenanceConcurrency, a.leads) })
	a.wg.Go(func() { a.runGC(runCtx) })
	a.wg.Go(func() { a.runEtcdHealth(runCtx) })
	a.wg.Go(func() { a.serveListeners(runCtx) })
	if a.internalLn != nil {
		a.wg.Go(func() { a.serveInternal(runCtx, a.internalLn) })
	}
	if a.httpLn != nil {
		a.httpSrv = a.newHTTPServer()
		a.wg.Go(func() {
			if err := a.httpSrv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("http server failed", "error", err)
			}
		})
	}
	a.serveMetrics()
	a.ready.Store(true)
	a.log.Info("agent started", "kafka", a.kafkaLn.Addr().String(), "advertised", a.cfg.AdvertisedAddr,
		"http", a.HTTPAddr(), "metrics", a.MetricsAddr(), "internal", a.InternalAddr(), "az", a.cfg.AZ, "group", a.cfg.Group)
	return nil
}

// awaitSelf waits until the watched view lists this agent, so that from the moment Start returns,
// Metadata and DescribeCluster name it.
func (a *Agent) awaitSelf(ctx context.Context) error {
	for {
		changed := a.cache.Changed()
		for _, ag := range a.cache.Agents() {
			if ag.ID == a.cfg.ID && ag.Addr == a.cfg.AdvertisedAddr {
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-a.done:
			return a.Err()
		}
	}
}

// register creates a new etcd session and registers the agent on it.
func (a *Agent) register(ctx context.Context) error {
	info := coord.AgentInfo{ID: a.cfg.ID, Addr: a.cfg.AdvertisedAddr, AZ: a.cfg.AZ, Group: a.cfg.Group,
		Version: a.cfg.Version, Started: time.Now().UTC(), Internal: a.internalAdvertised, Listeners: a.listenerAddrs(), HTTP: a.httpAdvertised()}
	cs, err := a.etcd.Register(ctx, info, a.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	var s session = cs
	if a.wrapSession != nil {
		s = a.wrapSession(s)
	}
	a.lead.setSession(s)
	return nil
}

// KafkaAddr is the bound Kafka listener address (valid after Start).
func (a *Agent) KafkaAddr() string {
	if a.kafkaLn == nil {
		return ""
	}
	return a.kafkaLn.Addr().String()
}

// HTTPAddr is the bound HTTP listener address (valid after Start; empty when HTTP is disabled).
func (a *Agent) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// Done is closed when the agent has stopped, by Shutdown, Close or a fatal error (see Err).
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is the error that stopped the agent, nil after a clean stop.
func (a *Agent) Err() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.err
}

// fail stops the agent with a fatal error.
func (a *Agent) fail(err error) {
	a.errMu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.errMu.Unlock()
	a.log.Error("agent stopping", "error", err)
	go a.Close()
}

// Shutdown is the graceful stop (SIGTERM): stop taking produce, flush and commit what is buffered, resign
// every leadership, deregister, close. Past ctx's deadline it closes at once.
func (a *Agent) Shutdown(ctx context.Context) error {
	if a.cancel == nil {
		return nil
	}
	a.lastRequest.Store(time.Now().UnixNano())
	a.stopping.Store(true)
	a.drainOnce.Do(func() { close(a.draining) })
	a.log.Info("shutting down: flushing buffered produce and handing over leadership")
	err := a.flusher.drain(ctx)
	led := a.lead.releaseAll()
	if s := a.lead.session(); s != nil {
		if cerr := s.Close(ctx); cerr != nil && err == nil {
			err = cerr
		}
	}
	// The listener stays open until the successors are known: refused produce is answered with them.
	start := time.Now()
	a.awaitSuccessors(ctx, led, start.Add(handoverWait))
	handedOver := time.Since(start)
	a.linger(ctx)
	a.log.Info("handed over", "partitions", len(led), "successors_after", handedOver,
		"lingered", time.Since(start)-handedOver, "redirected_requests", a.redirected.Load())
	if werr := a.acks.wait(ctx); werr != nil && err == nil {
		err = werr
	}
	a.Close()
	return err
}

// Once its partitions are handed over, a stopping agent keeps its connections open while clients still
// send it requests, answering each with where to go instead (KIP-951 leader hints for produce, KIP-392
// preferred read replicas for fetch). A client whose connection is closed instead waits for its next
// metadata refresh, seconds with some clients. It stops when no request came for lingerQuiet, or after
// lingerMax.
const (
	lingerQuiet = 250 * time.Millisecond
	lingerMax   = 2 * time.Second
)

// linger keeps the listeners open, after a handover, until clients have stopped sending requests here.
func (a *Agent) linger(ctx context.Context) {
	if _, ok := a.otherAgent(); !ok {
		return // no one to send clients to
	}
	end := time.Now().Add(lingerMax)
	for {
		last := time.Unix(0, a.lastRequest.Load())
		next := last.Add(lingerQuiet)
		if !next.After(time.Now()) {
			return
		}
		if next.After(end) {
			next = end
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		if !time.Now().Before(end) {
			return
		}
	}
}

// Close stops the agent at once; safe to call twice. Its session is abandoned, not revoked: its
// leaderships move when the lease expires, as after a crash. (After Shutdown the session is closed
// already.)
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.ready.Store(false)
		a.metrics.agentUp.Set(0)
		if s := a.lead.session(); s != nil {
			s.Abandon()
		}
		if a.cancel != nil {
			a.cancel()
		}
		a.closeListeners()
		if a.internalLn != nil {
			a.internalLn.Close()
		}
		if a.httpSrv != nil {
			a.httpSrv.Close()
		} else if a.httpLn != nil {
			a.httpLn.Close()
		}
		a.closeMetrics()
		a.wg.Wait()
		close(a.done)
	})
	return nil
}

// nodeID is the Kafka broker id of an agent: a stable hash of its id, so that it survives restarts.
func nodeID(agentID string) int32 {
	h := fnv.New32a()
	h.Write([]byte(agentID))
	return int32(h.Sum32() & 0x7fffffff)
}

func (a *Agent) nodeID(agentID string) int32 { return nodeID(agentID) }

// brokers are the live agents of this agent's group: the only brokers its clients are told about.
func (a *Agent) brokers() []coord.AgentInfo {
	var out []coord.AgentInfo
	for _, ag := range a.cache.Agents() {
		if ag.Group == a.cfg.Group {
			out = append(out, ag)
		}
	}
	return out
}
