package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/turncred"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/api"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/cloudapi/ratelimit"
	"github.com/callgw/callgw/signaling/routing"
	"github.com/callgw/callgw/web"
)

// DemoPhoneNumberID is the business number id the demo's simulator uses.
const DemoPhoneNumberID = "100000000000001"

// App is one running callgw.
type App struct {
	Cfg      Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	URL      string // http://host:port of the listener

	Redis  redis.UniversalClient
	mini   *miniredis.Miniredis
	Sim    *metasim.Sim // demo mode only
	Graph  *cloudapi.Client
	Media  *media.Engine
	Perms  *permissions.Tracker
	Ledger *billing.Ledger
	Ctrl   *signaling.Controller
	Hub    *agents.Hub
	API    *api.API
	// Router routes calls by numbers and teams; ConfigLoader (nil without
	// CALLGW_CONFIG) re-reads the file on SIGHUP (routing.go).
	Router       *routing.Router
	ConfigLoader *config.Loader
	holds        atomic.Pointer[map[string]*media.Prompt] // hold audio by number (routing.go)
	numClients   atomic.Pointer[numberClients]            // per-number Graph clients and live readers (numbers.go)
	graphBase    string                                   // Meta's Graph API base URL (the simulator's in the demo)
	limiter      *ratelimit.Redis                         // call_permissions budget, per number, cluster-wide

	ln    net.Listener
	srv   *http.Server
	ready atomic.Bool

	// Recordings is the recording side (recording.go); nil when nothing records.
	Recordings *Recordings
}

// New builds every part and binds the listener; Run serves.
func New(ctx context.Context, cfg Config, log *slog.Logger) (a *App, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a = &App{Cfg: cfg, Log: log, Registry: prometheus.NewRegistry()}
	built := a // the returns below set a to nil
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "ready",
		Help: "1 while this instance takes new calls, 0 while starting or draining."},
		func() float64 {
			if a.ready.Load() {
				return 1
			}
			return 0
		}))

	if a.Cfg.Demo {
		fillDemoSecrets(&a.Cfg)
	}
	if a.ln, err = net.Listen("tcp", a.Cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", a.Cfg.Addr, err)
	}
	a.URL = "http://" + hostPort(a.ln.Addr())
	if a.Cfg.PublicURL == "" {
		a.Cfg.PublicURL = a.URL
	}

	if err := a.openRedis(ctx); err != nil {
		return nil, err
	}

	// The numbers this deployment serves besides CALLGW_PHONE_NUMBER_ID.
	var numbers []config.Number
	nc, err := a.loadRouting()
	if err != nil {
		return nil, err
	}
	for _, n := range nc.Numbers {
		if n.PhoneNumberID != a.Cfg.PhoneNumberID {
			numbers = append(numbers, n)
		}
	}
	if err := a.newRouter(nc); err != nil {
		return nil, err
	}
	graphBase := a.Cfg.GraphURL
	if a.Cfg.Demo {
		var simNumbers []metasim.Number
		for i, n := range numbers {
			// The demo's simulated Meta serves the configured numbers too
			// (display numbers made up; tokens as configured, else the demo's).
			simNumbers = append(simNumbers, metasim.Number{PhoneNumberID: n.PhoneNumberID,
				DisplayPhoneNumber: fmt.Sprintf("1555000%04d", 2000+i), WABAID: n.WABAID, AccessToken: tokenOf(n, a.Cfg.AccessToken)})
		}
		graphBase = a.URL + "/sim/graph"
		a.Sim, err = metasim.New(metasim.Config{
			AppSecret: a.Cfg.AppSecret, VerifyToken: a.Cfg.VerifyToken, AccessToken: a.Cfg.AccessToken,
			PhoneNumberID: a.Cfg.PhoneNumberID, GraphVersion: a.Cfg.GraphVersion,
			WebhookURL: a.URL + "/webhooks/whatsapp", Logger: log.With("component", "metasim"),
			LoopbackOnly: a.Cfg.MediaLoopback, CallbackPermission: a.Cfg.CallbackPerm,
			Limits: metasim.Limits{TemporaryValidity: a.Cfg.PermissionTTL},
			// The demo's approved call-permission template (Meta requires a
			// template outside the user's 24 h window).
			Templates: []metasim.Template{{Name: demoTemplate, Language: demoTemplateLang, Category: "UTILITY", PermissionRequest: true}},
			// The simulated Meta's prices are the shipped sample card's
			// (first tiers; GB message rates), so that its analytics and our
			// ledger reconcile in the demo.
			CallRates: metasim.RateCard{Default: 30000, PerMinute: map[string]int64{"GB": 22000, "IN": 3200, "BR": 12000,
				"MX": 14000, "US": 12000, "CA": 12000, "JM": 45000, "KZ": 36000, "RU": 40000}},
			Pricing: metasim.Pricing{MessageRates: map[string]int64{"utility": 22000, "marketing": 52900,
				"authentication": 35800, "service": 22000}},
			Numbers: simNumbers,
		})
		if err != nil {
			return nil, fmt.Errorf("simulator: %w", err)
		}
		if a.Cfg.PermissionTemplate == "" {
			a.Cfg.PermissionTemplate = demoTemplate + ":" + demoTemplateLang
		}
		if a.Cfg.WABAID == "" {
			a.Cfg.WABAID = a.Sim.Numbers()[0].WABAID
		}
	}
	a.Graph, err = cloudapi.New(cloudapi.Config{BaseURL: graphBase, Version: a.Cfg.GraphVersion,
		AccessToken: a.Cfg.AccessToken, PhoneNumberID: a.Cfg.PhoneNumberID,
		Logger: log.With("component", "cloudapi")}, a.Registry)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	a.graphBase = graphBase
	// The call_permissions budget shared by all instances (per number).
	if a.limiter, err = ratelimit.NewRedis(a.Redis, ratelimit.Config{}); err != nil {
		return nil, fmt.Errorf("graph rate limit: %w", err)
	}
	numClients, err := a.buildNumbers(nc, nil) // numbers.go: each number's client and live reader
	if err != nil {
		return nil, err
	}
	a.numClients.Store(numClients)
	served := numClients.served

	iceServers, err := a.Cfg.ParseICEServers()
	if err != nil {
		return nil, err
	}
	var agentICE []webrtc.ICEServer
	var hubICE []agents.ICEServer
	for _, s := range iceServers {
		agentICE = append(agentICE, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		hubICE = append(hubICE, agents.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	a.Media, err = media.NewEngine(media.Config{PublicIPs: a.Cfg.PublicIPs, UDPPort: a.Cfg.UDPPort,
		PortMin: a.Cfg.UDPPortMin, PortMax: a.Cfg.UDPPortMax, LoopbackOnly: a.Cfg.MediaLoopback,
		MediaTimeout: a.Cfg.MediaTimeout, MediaStartTimeout: a.Cfg.MediaStartTimeout,
		SilenceBeforeAccept: a.Cfg.SilenceBeforeAccept, AgentICEServers: agentICE, PacketPath: a.Cfg.MediaPath,
		Logger: log.With("component", "media")}, a.Registry)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}

	pcfg := permissions.Config{TemporaryValidity: a.Cfg.PermissionTTL, CallbackPermission: a.Cfg.CallbackPerm}
	a.Perms, err = permissions.New(a.Redis, pcfg, sysClock{}, metaChecker{a.Graph}, a.Registry, log.With("component", "permissions"))
	if err != nil {
		return nil, fmt.Errorf("permissions: %w", err)
	}

	var rc *billing.RateCard
	if a.Cfg.RateCard != "" {
		rc, err = billing.LoadRateCardFile(a.Cfg.RateCard)
	} else {
		rc, err = billing.SampleRateCard()
	}
	if err != nil {
		return nil, fmt.Errorf("rate card: %w", err)
	}
	billingLoc, _ := a.Cfg.BillingLocation() // checked by Config.Validate
	a.Ledger, err = billing.NewLedger(a.Redis, rc, billing.Config{Location: billingLoc}, a.Registry, log.With("component", "billing"))
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}

	live, err := cloudapi.NewPermissionsReader(a.Graph, cloudapi.ReaderConfig{Limiter: a.limiter, CacheTTL: a.Cfg.LiveCacheTTL,
		Logger: log.With("component", "cloudapi")}, a.Registry)
	if err != nil {
		return nil, fmt.Errorf("live permissions: %w", err)
	}
	deps := signaling.Deps{Redis: a.Redis, Graph: a.Graph, Dialer: a.Graph, Live: live, Media: mediaAdapter{a.Media},
		Router: a.Router, HoldAudio: a.holdAudio, Recorder: ledgerRecorder{a.Ledger}, Permissions: a.Perms, Messages: a.Ledger, Quotes: a.Ledger, Registerer: a.Registry,
		Logger: log.With("component", "signaling")}
	a.numberDeps(&deps) // numbers.go: GraphFor, DialerFor, SettingsFor, LiveFor over the clients in force
	a.Ctrl, err = signaling.New(signaling.Config{
		InstanceID: a.Cfg.InstanceID, PhoneNumberID: a.Cfg.PhoneNumberID, AppSecret: a.Cfg.AppSecret,
		VerifyToken: a.Cfg.VerifyToken, RingTimeout: a.Cfg.RingTimeout, RingCeiling: a.Cfg.RingCeiling, AgentGrace: a.Cfg.AgentGrace,
		MaskNumbers: a.Cfg.MaskNumbers, LeaseTTL: a.Cfg.LeaseTTL, PermissionTemplate: a.Cfg.PermissionTemplate,
		Numbers: served,
	}, deps)
	if err != nil {
		return nil, fmt.Errorf("signaling: %w", err)
	}
	turn, err := a.Cfg.TURNIssuer()
	if err != nil {
		return nil, err
	}
	iceFor, iceRenew := turnICEServers(turn, hubICE)
	a.Hub, err = agents.NewHub(agents.HubConfig{TokenSecret: []byte(a.Cfg.TokenSecret), ICEServers: hubICE,
		ICEServersFor: iceFor, ICERenewEvery: iceRenew,
		Settings: agents.Settings{MaskNumbers: a.Cfg.MaskNumbers, RingTimeoutS: int(a.Cfg.RingTimeout / time.Second), Demo: a.Cfg.Demo}},
		a.Ctrl, a.Registry, log.With("component", "agents"))
	if err != nil {
		return nil, fmt.Errorf("agent hub: %w", err)
	}
	a.Ctrl.SetHub(a.Hub)
	a.API, err = api.New(api.Config{APIKeys: a.Cfg.APIKeys, TokenSecret: []byte(a.Cfg.TokenSecret),
		Demo: a.Cfg.Demo, Sim: a.Sim != nil, MaskNumbers: a.Cfg.MaskNumbers}, a.Ctrl, a.Ledger, a.Hub, log.With("component", "api"))
	if err != nil {
		return nil, err
	}
	if err := a.wireRecordings(graphBase, numbers); err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	a.srv = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return a, nil
}

func (a *App) openRedis(ctx context.Context) error {
	switch {
	case a.Cfg.RedisURL != "":
		opt, err := redis.ParseURL(a.Cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("CALLGW_REDIS_URL: %w", err)
		}
		failFast(opt)
		a.Redis = redis.NewClient(opt)
	case a.Cfg.RedisMaster != "" || a.Cfg.RedisCluster:
		a.Redis = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: a.Cfg.RedisAddrs,
			MasterName: a.Cfg.RedisMaster, IsClusterMode: a.Cfg.RedisCluster,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1})
	default:
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("embedded store: %w", err)
		}
		a.mini = m
		a.Redis = redis.NewClient(&redis.Options{Addr: m.Addr()})
		a.Log.Warn("no CALLGW_REDIS_URL: using the embedded in-process store; state is NOT durable and not shared (demo only)")
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Redis.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/webhooks/whatsapp", a.Ctrl.WebhookHandler())
	mux.Handle("GET /ws/agent", a.Hub)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{Registry: a.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.Redis.Ping(ctx).Err(); err != nil {
			// Alive, but say what is wrong; liveness must not restart us for Redis.
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "ok (redis: %v)\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("verbose") {
			a.readyVerbose(w, r)
			return
		}
		if !a.ready.Load() {
			http.Error(w, "not ready (starting or draining)", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.Redis.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/api/", a.API.Handler())
	a.recordingRoutes(mux)
	if a.Sim != nil {
		mux.Handle("/sim/graph/", http.StripPrefix("/sim/graph", a.Sim.GraphHandler()))
		mux.Handle("/sim/", http.StripPrefix("/sim", a.Sim.ControlHandler()))
	}
	w := web.Handler()
	mux.Handle("/agent", w)
	mux.Handle("/supervisor", w)
	mux.Handle("/static/", w)
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, "/agent", http.StatusFound)
	})
	// /api/ goes to the API unrouted: ServeMux would answer an unclean
	// path with an HTML redirect, the API answers JSON.
	api := a.API.Handler()
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			api.ServeHTTP(rw, r)
			return
		}
		mux.ServeHTTP(rw, r)
	})
}

// Ready reports whether the instance takes new calls.
func (a *App) Ready() bool { return a.ready.Load() }

// Run serves until ctx ends, then drains: readiness goes false, no new calls
// are taken, live calls continue up to DrainTimeout and are then terminated
// and recorded; then everything closes.
func (a *App) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	serveErr := make(chan error, 1)
	g.Go(func() error {
		err := a.srv.Serve(a.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		serveErr <- err
		return err
	})
	runCtx, stopRun := context.WithCancel(context.Background())
	g.Go(func() error { return a.Ctrl.Run(runCtx) })
	g.Go(a.configWatcher(runCtx))
	g.Go(func() error {
		// The numbers' calling settings at start (callback permission,
		// call hours); account_settings_update webhooks keep them fresh.
		sctx, cancel := context.WithTimeout(runCtx, 15*time.Second)
		defer cancel()
		if err := a.Ctrl.RefreshAllSettings(sctx); err != nil {
			a.Log.Warn("cannot read the numbers' calling settings from Meta", "err", err)
		}
		return nil
	})
	g.Go(a.runRecordings(runCtx))
	if a.Cfg.WABAID != "" {
		rec, err := billing.NewReconciler(a.Ledger, billing.ReconcileConfig{Instance: a.Cfg.InstanceID})
		if err != nil {
			stopRun()
			return fmt.Errorf("reconciliation: %w", err)
		}
		g.Go(func() error {
			err := rec.RunDaily(runCtx, billing.FetchFrom(analyticsFetcher{c: a.Graph, waba: a.Cfg.WABAID}))
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		})
	}
	a.ready.Store(true)
	a.Log.Info("callgw serving", "url", a.URL, "demo", a.Cfg.Demo, "instance", a.Cfg.InstanceID)
	g.Go(func() error {
		<-gctx.Done()
		a.ready.Store(false)
		a.Log.Info("draining", "timeout", a.Cfg.DrainTimeout.String())
		dctx, cancel := context.WithTimeout(context.Background(), a.Cfg.DrainTimeout)
		a.Ctrl.Drain(dctx)
		cancel()
		_ = a.Ctrl.Close()
		_ = a.Hub.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.srv.Shutdown(sctx)
		scancel()
		stopRun()
		return nil
	})
	err := g.Wait()
	a.Close()
	return err
}

// Close releases everything New acquired. It is idempotent and safe on a
// partly built App.
func (a *App) Close() {
	if a.Sim != nil {
		_ = a.Sim.Close()
	}
	if a.Media != nil {
		_ = a.Media.Close()
	}
	if a.Graph != nil {
		_ = a.Graph.Close()
	}
	if a.ln != nil {
		_ = a.ln.Close()
	}
	if a.Redis != nil {
		_ = a.Redis.Close()
	}
	if a.mini != nil {
		a.mini.Close()
	}
}

// AgentToken signs a token for agent (role agent or supervisor).
func (a *App) AgentToken(agent string, role agents.Role, ttl time.Duration) (string, error) {
	return agents.IssueToken([]byte(a.Cfg.TokenSecret), agent, role, ttl, time.Now())
}

// turnICEServers gives each agent session the static ICE servers plus its
// own time-limited TURN credentials, renewed every TTL/2 (nil without TURN).
func turnICEServers(turn *turncred.Issuer, static []agents.ICEServer) (func(string) []agents.ICEServer, time.Duration) {
	if turn == nil {
		return nil, 0
	}
	return func(agent string) []agents.ICEServer {
		c := turn.Issue(agent)
		out := append([]agents.ICEServer(nil), static...)
		return append(out, agents.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Credential})
	}, turn.RenewEvery()
}

func fillDemoSecrets(c *Config) {
	rnd := func() string {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	if c.AppSecret == "" {
		c.AppSecret = rnd()
	}
	if c.VerifyToken == "" {
		c.VerifyToken = rnd()
	}
	if c.AccessToken == "" {
		c.AccessToken = rnd()
	}
	if c.TokenSecret == "" {
		c.TokenSecret = rnd()
	}
	if c.PhoneNumberID == "" {
		c.PhoneNumberID = DemoPhoneNumberID
	}
}

func hostPort(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(ta.Port))
}

// failFast keeps a Redis outage from stalling every request: decisions
// degrade or fail closed within about a second instead of several. Values
// set in the URL win.
func failFast(o *redis.Options) {
	if o.DialTimeout == 5*time.Second { // go-redis' default
		o.DialTimeout = time.Second
	}
	if o.ReadTimeout == 3*time.Second {
		o.ReadTimeout = 2 * time.Second
		o.WriteTimeout = 2 * time.Second
	}
	if o.MaxRetries == 3 {
		o.MaxRetries = 1
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
}

// The demo's call-permission template (the simulator approves it).
const (
	demoTemplate     = "call_permission"
	demoTemplateLang = "en_US"
)

// tokenOf is a configured number's access token: the variable its
// token_env names, else the main one.
func tokenOf(n config.Number, def string) string {
	if n.TokenEnv != "" {
		if t := os.Getenv(n.TokenEnv); t != "" {
			return t
		}
	}
	return def
}
