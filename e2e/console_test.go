package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"
)

// browserTimeout bounds the whole browser session; each wait for the page to show a change is bounded
// by pageTimeout (a killed agent's lease TTL, an election and a refresh of the page take seconds).
const (
	browserTimeout = 3 * time.Minute
	pageTimeout    = 45 * time.Second
)

// needChromium returns the path of Debian's chromium, which "make deps" installs.
func needChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("chromium is not installed: run 'make deps' (or 'sudo apt-get install -y chromium')")
	return ""
}

// newBrowser starts a headless Chromium for the test and returns a context of its first tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(needChromium(t)), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shoot saves a full-page PNG of the current page as name.png in the test's artifact directory
// (kept with go test -artifacts, under -outputdir).
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// poll waits until the JavaScript expression holds on the page: the console's pages swap their tables
// in as the cluster changes, so the test waits on the DOM, not on a clock.
func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(pageTimeout))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("the page did not show %s: %v\n%s", what, err, html)
	}
}

// open navigates to url and waits for the page's main content.
func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// The console in a real browser, against three agent processes in three zones beside dev's etcd and
// S3: the agents page shows the three agents and the cluster's rates summed over them, a topic's page its leaders, the groups page a group's
// lag; once an agent is killed, the agents page shows it down, the topic's partitions move to the
// others and the failovers page tells it, each seen by polling the DOM of a page left open. Every page
// is saved as a screenshot (docs/img/ holds copies).
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	d := startDev(t, t.TempDir(), "--agents", "0")
	var agents []*agentProc
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("agent-%d", i)
		agents = append(agents, startAgent(t, d, id, "--id", id, "--az", fmt.Sprintf("az%d", i), "--lease-ttl", "3s"))
	}
	console, brokers := agents[0].http, agents[0].kafka
	open(t, ctx, console+"/") // the charts sample while a page is open
	poll(t, ctx, "three agents up", `document.querySelectorAll('#agents tr.up').length === 3 &&
		['agent-1','agent-2','agent-3'].every(id => document.querySelector('tr[data-agent="'+id+'"]') !== null)`)
	createTopic(t, brokers, "orders", 6)
	roundRobin := kgo.RecordPartitioner(kgo.RoundRobinPartitioner())
	kgoProduce(t, brokers, "orders", values("order", 120), roundRobin)

	// A consumer group that read everything, then 30 more records it has not read: its lag is 30.
	cl := newKgo(t, brokers, kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders"), kgo.DisableAutoCommit(),
		kgo.ClientID("billing-service"))
	gctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	for got := 0; got < 120; {
		fs := cl.PollFetches(gctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(gctx); err != nil {
		t.Fatal(err)
	}
	kgoProduce(t, brokers, "orders", values("late", 30), roundRobin)

	// The charts are the cluster's: agent-1 sums its own rates and those agent-2 and agent-3 serve it.
	// A steady trickle to another topic keeps them moving for the screenshot.
	stopClicks := trickle(t, brokers, "clicks")
	poll(t, ctx, "the produce, fetch and etcd charts above zero, summed over the three agents", `['produce', 'fetch', 'etcd_txns'].every(k =>
		parseFloat(document.querySelector('figure[data-key="' + k + '"]').getAttribute('data-max') || '0') > 0) &&
		document.getElementById('rate-agents').getAttribute('data-summed') === '3'`)
	poll(t, ctx, "ten seconds of samples in the charts", `parseInt(document.querySelector('figure[data-key="produce"]').getAttribute('data-points') || '0', 10) >= 10`)
	shoot(t, ctx, "console-agents")
	stopClicks()

	open(t, ctx, console+"/topics")
	poll(t, ctx, "the topic orders", `document.querySelector('tr[data-topic="orders"]') !== null`)
	shoot(t, ctx, "console-topics")

	open(t, ctx, console+"/topics/orders")
	leaders := `Array.from(document.querySelectorAll('#partitions td.leader')).map(td => td.textContent.trim())`
	poll(t, ctx, "a leader on every partition of orders, spread over the agents", fmt.Sprintf(
		`(l => l.length === 6 && l.every(a => /^agent-[123]$/.test(a)) && new Set(l).size > 1)(%s)`, leaders))
	shoot(t, ctx, "console-topic")

	open(t, ctx, console+"/groups")
	poll(t, ctx, "the lag of billing", `(td => td !== null && td.textContent.trim() === '30')(
		document.querySelector('tr[data-group="billing"] td.lag'))`)
	shoot(t, ctx, "console-groups")
	open(t, ctx, console+"/groups/default/billing")
	poll(t, ctx, "billing's member and lag", `document.getElementById('total-lag').textContent === '30' &&
		document.querySelector('#members').textContent.includes('billing-service')`)
	shoot(t, ctx, "console-group")

	// Kill agent-3 as a crash would; the open agents page shows it down, without a reload.
	open(t, ctx, console+"/")
	agents[2].kill(t)
	poll(t, ctx, "agent-3 down", `(tr => tr !== null && tr.classList.contains('down'))(document.querySelector('tr[data-agent="agent-3"]'))
		&& document.querySelectorAll('#agents tr.up').length === 2`)
	shoot(t, ctx, "console-agent-down")

	open(t, ctx, console+"/topics/orders")
	poll(t, ctx, "orders led by agent-1 and agent-2 only", fmt.Sprintf(
		`(l => l.length === 6 && l.every(a => a === 'agent-1' || a === 'agent-2'))(%s)`, leaders))

	open(t, ctx, console+"/failovers")
	poll(t, ctx, "agent-3's departure and its partitions' failovers", `Array.from(document.querySelectorAll('#events tr')).some(tr =>
		tr.classList.contains('failover') && tr.textContent.includes('orders/') && tr.textContent.includes('agent-3 → agent-')) &&
		document.getElementById('events').textContent.includes('agent left')`)
	shoot(t, ctx, "console-failovers")

	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#events")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "zone az3") {
		t.Errorf("the failovers page does not name agent-3's zone:\n%s", text)
	}
}

// trickle produces a 1 KiB record to topic (created with 3 partitions) every 20 ms until the returned
// function is called, which waits for it to stop.
func trickle(t *testing.T, brokers, topic string) func() {
	t.Helper()
	createTopic(t, brokers, topic, 3)
	cl := newKgo(t, brokers, kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			v := fmt.Appendf(make([]byte, 0, 1024), "click-%06d", i)
			cl.Produce(ctx, &kgo.Record{Value: v[:1024]}, nil)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}
