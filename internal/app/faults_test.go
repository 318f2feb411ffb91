package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/metasim"
)

// Test harness for dependency failures: a Graph API that fails on demand in
// front of the simulator, a TCP proxy that makes a real redis-server slow,
// and a callgw (not demo: talking to that Graph API) on both.

// graphMode is how the faulty Graph API answers.
type graphMode int32

const (
	graphOK        graphMode = iota // the simulator answers
	graph5xx                        // 503 with a plain-text body
	graphTimeout                    // no answer until the client gives up
	graphHTML                       // 502 with an HTML page (a proxy's error page)
	graphMetaError                  // 400 with Meta's error body, code graphFault.metaCode
)

func (m graphMode) String() string {
	return [...]string{"ok", "5xx", "timeout", "html", "meta_error"}[m]
}

// graphFault serves the Graph API: the simulator's, or a failure. Failures
// apply to POSTs (sends: messages, calls) unless all is set, when reads
// (call_permissions) fail as well.
type graphFault struct {
	simMu    sync.Mutex
	sim      http.Handler
	mode     atomic.Int32
	all      atomic.Bool
	metaCode atomic.Int64
	failed   atomic.Int64 // requests answered with a failure
}

func (g *graphFault) set(m graphMode, all bool, metaCode int) {
	g.mode.Store(int32(m))
	g.all.Store(all)
	g.metaCode.Store(int64(metaCode))
}

func (g *graphFault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := graphMode(g.mode.Load())
	if m == graphOK || (r.Method != http.MethodPost && !g.all.Load()) {
		g.simMu.Lock()
		sim := g.sim
		g.simMu.Unlock()
		sim.ServeHTTP(w, r)
		return
	}
	g.failed.Add(1)
	switch m {
	case graph5xx:
		http.Error(w, "upstream connect error or disconnect/reset before headers", http.StatusServiceUnavailable)
	case graphTimeout:
		select { // the client's per-attempt timeout (5 s) ends it
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	case graphHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>")
	case graphMetaError:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"message":"(#`+itoa(g.metaCode.Load())+`) Meta refused","type":"OAuthException","code":`+
			itoa(g.metaCode.Load())+`,"error_data":{"messaging_product":"whatsapp","details":"refused by the test"},"fbtrace_id":"AbCdEf"}}`)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// redisProxy forwards TCP to a redis-server, delaying every answer by delay
// while it is set (a slow Redis: go-redis' read timeout is 2 s).
type redisProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startRedisProxy(t testing.TB, target string) *redisProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *redisProxy) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *redisProxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *redisProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.conns == nil {
		return false // closed
	}
	if on {
		p.conns[c] = true
	} else if p.conns != nil {
		delete(p.conns, c)
	}
	return true
}

func (p *redisProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			_ = c.Close() // Redis down: the client sees the connection drop
			continue
		}
		if !p.track(c, true) || !p.track(up, true) {
			_ = c.Close()
			_ = up.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(up, c, false)
		go p.pipe(c, up, true)
	}
}

// pipe copies src to dst; answers (Redis to client) wait for the delay.
func (p *redisProxy) pipe(dst, src net.Conn, answers bool) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.track(dst, false)
		p.track(src, false)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); answers && d > 0 {
				time.Sleep(d) // the fault injected: a slow Redis
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *redisProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

// faultEnv is a callgw talking to a faulty Graph API (in front of the
// simulator) and to a real redis-server through a proxy that can slow it.
type faultEnv struct {
	*testApp
	sim   *metasim.Sim
	graph *graphFault
	proxy *redisProxy
	rs    *redistest.Server
	args  []string // the instance's flags after -addr
}

const (
	faultAppSecret   = "fault-app-secret"
	faultAccessToken = "fault-access-token"
	faultTokenSecret = "fault-token-secret-0123456789"
	faultPNID        = "100000000000001"
)

func startFaultEnv(t *testing.T, log *slog.Logger, extra ...string) *faultEnv {
	t.Helper()
	return newFaultEnv(t, log, true, extra...)
}

// newFaultEnv is startFaultEnv; without slowable, callgw talks to Redis
// directly (proxy nil).
func newFaultEnv(t *testing.T, log *slog.Logger, slowable bool, extra ...string) *faultEnv {
	t.Helper()
	rs := redistest.Start(t)
	var proxy *redisProxy
	redisURL := rs.URL()
	if slowable {
		proxy = startRedisProxy(t, rs.Addr)
		redisURL = proxy.url()
	}
	addr := freeAddr(t)
	sim, err := metasim.New(metasim.Config{AppSecret: faultAppSecret, AccessToken: faultAccessToken, PhoneNumberID: faultPNID,
		WebhookURL: "http://" + addr + "/webhooks/whatsapp", LoopbackOnly: true, WebhookRetries: 3,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEnv{sim: sim, proxy: proxy, rs: rs}
	t.Cleanup(func() { e.closeSim() })
	g := &graphFault{sim: sim.GraphHandler()}
	gs := httptest.NewServer(g)
	t.Cleanup(gs.Close)
	args := append([]string{"-addr", addr, "-redis-url", redisURL, "-graph-url", gs.URL,
		"-access-token", faultAccessToken, "-app-secret", faultAppSecret, "-verify-token", "v",
		"-phone-number-id", faultPNID, "-token-secret", faultTokenSecret, "-media-loopback",
		"-ring-timeout", "8s", "-agent-grace", "3s", "-drain-timeout", "2s", "-mask-numbers=false", "-instance-id", "edge-a"}, extra...)
	e.testApp, e.graph, e.args = startWith(t, args, rs, log), g, args[2:]
	return e
}

// closeSim closes the simulator and lets go of it (the soak test measures
// the heap without it); the Graph API then answers 503.
func (e *faultEnv) closeSim() {
	if e.sim == nil {
		return
	}
	_ = e.sim.Close()
	e.sim = nil
	e.graph.simMu.Lock()
	e.graph.sim = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "simulator closed", http.StatusServiceUnavailable)
	})
	e.graph.simMu.Unlock()
}

// another starts a second callgw instance on the same Redis and Graph API
// (webhooks still go to the first).
func (e *faultEnv) another(t *testing.T, id string) *testApp {
	t.Helper()
	args := append(append([]string{"-addr", "127.0.0.1:0"}, e.args...), "-instance-id", id) // the last -instance-id wins
	return startWith(t, args, e.rs, nil)
}

// startWith runs a callgw with args until the test ends. log nil: warnings
// into the test log.
func startWith(t testing.TB, args []string, rs *redistest.Server, log *slog.Logger) *testApp {
	t.Helper()
	cfg, err := LoadConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	ta := &testApp{App: a, redis: rs}
	var once sync.Once
	ta.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("app stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("app did not stop")
			}
		})
	}
	t.Cleanup(ta.stop)
	return ta
}

// waitReady waits until /readyz answers 200 (after Redis came back).
func waitReady(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	waitFor(t, ctx, "readyz", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// userWrites makes the simulated user send a text message: it opens the
// user's 24 h customer service window (at Meta and, once the webhook is
// delivered, at the gateway), inside which a permission request is a
// free-form interactive message.
func userWrites(t *testing.T, ctx context.Context, sim *metasim.Sim, number string) {
	t.Helper()
	id, err := sim.SendUserMessage("", number, "hello")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the user's message to be delivered", func() bool {
		for _, w := range sim.Webhooks() {
			if strings.Contains(string(w.Body), id) {
				if w.Status != http.StatusOK {
					t.Fatalf("user message webhook: %d", w.Status)
				}
				return true
			}
		}
		return false
	})
}
