package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callgw/callgw/media"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// The control API the gateway role serves to the peers role (loopback only):
//
//	POST   /bridges                        -> {"id"}
//	POST   /bridges/{id}/whatsapp-offer    {"sdp"} -> {"sdp"} (our answer, gathered)
//	POST   /bridges/{id}/agent-offer       -> {"sdp", "candidates"} (our offer and the candidates gathered so far)
//	POST   /bridges/{id}/agent-answer      {"sdp"} -> 204
//	GET    /bridges/{id}/connected         -> 204 once both legs are connected (504 on the request's deadline)
//	DELETE /bridges/{id}                   -> 204
//	GET    /stats[?gc=1]                   -> gatewayStats of this process (after two GCs with gc=1)
const (
	maxBody = 64 << 10
	// firstCandidateWait bounds how long agent-offer waits for the agent
	// leg's first candidate (with the UDP mux on loopback there is exactly
	// one, host 127.0.0.1:port, gathered at once).
	firstCandidateWait = 5 * time.Second
)

// gatewayStats is what the gateway process reports about itself.
type gatewayStats struct {
	PID        int   `json:"pid"`
	GOMAXPROCS int   `json:"gomaxprocs"`
	CPUNanos   int64 `json:"cpu_ns"` // user+system since start (getrusage)
	// RunDelayNanos is the time the process's threads were runnable but
	// waiting for a CPU (sum of /proc/self/task/*/schedstat run_delay; -1
	// when unknown): other processes on the gateway's core show here.
	RunDelayNanos int64  `json:"run_delay_ns"`
	RSSBytes      int64  `json:"rss_bytes"`
	MaxRSSBytes   int64  `json:"max_rss_bytes"`
	HeapBytes     uint64 `json:"heap_bytes"`
	Goroutines    int    `json:"goroutines"`
	Bridges       int    `json:"bridges"`
	// Engine counters since start.
	ForwardedToAgent uint64 `json:"forwarded_to_agent"`
	ForwardedToWA    uint64 `json:"forwarded_to_whatsapp"`
	DroppedToAgent   uint64 `json:"dropped_to_agent"`
	DroppedToWA      uint64 `json:"dropped_to_whatsapp"`
	Silence          uint64 `json:"silence"`
	// The fast path socket's batched system calls since start.
	Socket media.SocketStats `json:"socket"`
	// The forward delay histogram since start (fast path).
	ForwardDelay media.DelayHistogram `json:"forward_delay"`
	// The bare relay baseline in the same process (0: none).
	RelayPort      int    `json:"relay_port,omitempty"`
	RelayForwarded uint64 `json:"relay_forwarded,omitempty"`
}

type sdpMsg struct {
	SDP        string                    `json:"sdp"`
	Candidates []webrtc.ICECandidateInit `json:"candidates,omitempty"`
}

type idMsg struct {
	ID string `json:"id"`
}

// gatewayServer owns a media.Engine's bridges on behalf of the control API.
type gatewayServer struct {
	eng *media.Engine
	reg *prometheus.Registry
	log *slog.Logger
	// relay is the bare relay baseline (nil: none).
	relay *relay

	mu      sync.Mutex
	next    int
	bridges map[string]*ctlBridge
	closed  bool
}

// ctlBridge is one bridge and what its events reported.
type ctlBridge struct {
	b          *media.Bridge
	waUp, agUp chan struct{}

	mu    sync.Mutex
	cands []webrtc.ICECandidateInit
	candC chan struct{} // signalled (cap 1) on every new candidate
}

func newGatewayServer(eng *media.Engine, reg *prometheus.Registry, log *slog.Logger) *gatewayServer {
	return &gatewayServer{eng: eng, reg: reg, log: log, bridges: map[string]*ctlBridge{}}
}

func (s *gatewayServer) handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /bridges", s.create)
	m.HandleFunc("POST /bridges/{id}/whatsapp-offer", s.whatsAppOffer)
	m.HandleFunc("POST /bridges/{id}/agent-offer", s.agentOffer)
	m.HandleFunc("POST /bridges/{id}/agent-answer", s.agentAnswer)
	m.HandleFunc("GET /bridges/{id}/connected", s.connected)
	m.HandleFunc("DELETE /bridges/{id}", s.remove)
	m.HandleFunc("GET /stats", s.stats)
	m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)            // CPU profile of a window: ?seconds=N
	m.Handle("GET /debug/pprof/goroutine", pprof.Handler("goroutine")) // ?debug=1: grouped stacks
	m.Handle("GET /debug/pprof/heap", pprof.Handler("heap"))
	return m
}

func (s *gatewayServer) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "gateway closing", http.StatusServiceUnavailable)
		return
	}
	s.next++
	id := "load-" + strconv.Itoa(s.next)
	cb := &ctlBridge{waUp: make(chan struct{}), agUp: make(chan struct{}), candC: make(chan struct{}, 1)}
	s.bridges[id] = cb
	s.mu.Unlock()
	var waOnce, agOnce sync.Once
	b, err := s.eng.NewBridge(id, media.Events{
		OnAgentCandidate: func(c webrtc.ICECandidateInit) {
			cb.mu.Lock()
			cb.cands = append(cb.cands, c)
			cb.mu.Unlock()
			select {
			case cb.candC <- struct{}{}:
			default:
			}
		},
		OnWhatsAppState: func(st media.LegState) {
			if st == media.LegConnected {
				waOnce.Do(func() { close(cb.waUp) })
			}
		},
		OnAgentState: func(st media.LegState) {
			if st == media.LegConnected {
				agOnce.Do(func() { close(cb.agUp) })
			}
		},
	})
	if err != nil {
		s.mu.Lock()
		delete(s.bridges, id)
		s.mu.Unlock()
		http.Error(w, "new bridge: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	cb.b = b
	closed := s.closed
	s.mu.Unlock()
	if closed { // close() ran while the bridge was being made
		_ = b.Close()
		http.Error(w, "gateway closing", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, idMsg{ID: id})
}

// bridge looks up {id}; it answers 404 itself when there is none.
func (s *gatewayServer) bridge(w http.ResponseWriter, r *http.Request) *ctlBridge {
	s.mu.Lock()
	cb := s.bridges[r.PathValue("id")]
	s.mu.Unlock()
	if cb == nil || cb.b == nil {
		http.Error(w, "no such bridge", http.StatusNotFound)
		return nil
	}
	return cb
}

func (s *gatewayServer) whatsAppOffer(w http.ResponseWriter, r *http.Request) {
	cb := s.bridge(w, r)
	if cb == nil {
		return
	}
	var in sdpMsg
	if !readJSON(w, r, &in) {
		return
	}
	answer, err := cb.b.AnswerWhatsApp(r.Context(), in.SDP)
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	// The load call is accepted at once (signaling calls this when Meta's
	// accept returned 200).
	if err := cb.b.StartWhatsAppMedia(); err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	writeJSON(w, sdpMsg{SDP: answer})
}

func (s *gatewayServer) agentOffer(w http.ResponseWriter, r *http.Request) {
	cb := s.bridge(w, r)
	if cb == nil {
		return
	}
	offer, err := cb.b.OfferAgent(r.Context())
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	select {
	case <-cb.candC:
	case <-time.After(firstCandidateWait):
		http.Error(w, "agent leg gathered no candidate", http.StatusGatewayTimeout)
		return
	case <-r.Context().Done():
		return
	}
	cb.mu.Lock()
	cands := append([]webrtc.ICECandidateInit(nil), cb.cands...)
	cb.mu.Unlock()
	writeJSON(w, sdpMsg{SDP: offer, Candidates: cands})
}

func (s *gatewayServer) agentAnswer(w http.ResponseWriter, r *http.Request) {
	cb := s.bridge(w, r)
	if cb == nil {
		return
	}
	var in sdpMsg
	if !readJSON(w, r, &in) {
		return
	}
	if err := cb.b.SetAgentAnswer(in.SDP); err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *gatewayServer) connected(w http.ResponseWriter, r *http.Request) {
	cb := s.bridge(w, r)
	if cb == nil {
		return
	}
	for _, ch := range []chan struct{}{cb.waUp, cb.agUp} {
		select {
		case <-ch:
		case <-r.Context().Done():
			http.Error(w, "legs not connected", http.StatusGatewayTimeout)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *gatewayServer) remove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	cb := s.bridges[id]
	if cb != nil && cb.b != nil {
		delete(s.bridges, id)
	}
	s.mu.Unlock()
	if cb == nil || cb.b == nil {
		http.Error(w, "no such bridge", http.StatusNotFound)
		return
	}
	_ = cb.b.Close()
	w.WriteHeader(http.StatusNoContent)
}

func (s *gatewayServer) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.snapshot(r.URL.Query().Get("gc") == "1")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

// snapshot reads the process's resources and the engine's counters.
func (s *gatewayServer) snapshot(gc bool) (gatewayStats, error) {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := gatewayStats{
		PID:           os.Getpid(),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		CPUNanos:      int64(cpuTime()),
		RunDelayNanos: runDelay(),
		HeapBytes:     ms.HeapAlloc,
		Goroutines:    runtime.NumGoroutine(),
		Bridges:       s.eng.ActiveBridges(),
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		st.MaxRSSBytes = ru.Maxrss * 1024 // KiB on Linux
	}
	rss, err := currentRSS()
	if err != nil {
		return st, err
	}
	st.RSSBytes = rss
	c, err := engineCounters(s.reg)
	if err != nil {
		return st, err
	}
	st.ForwardedToAgent, st.ForwardedToWA = c.forwarded["to_agent"], c.forwarded["to_whatsapp"]
	st.DroppedToAgent, st.DroppedToWA = c.dropped["to_agent"], c.dropped["to_whatsapp"]
	st.Silence = c.silence
	st.Socket = s.eng.SocketStats()
	st.ForwardDelay = s.eng.ForwardDelay()
	if s.relay != nil {
		st.RelayPort, st.RelayForwarded = s.relay.port(), s.relay.forwarded.Load()
	}
	return st, nil
}

// close closes every bridge left and refuses new ones.
func (s *gatewayServer) close() {
	s.mu.Lock()
	s.closed = true
	var left []*media.Bridge
	for _, cb := range s.bridges {
		if cb.b != nil { // nil: create closes it when it sees closed
			left = append(left, cb.b)
		}
	}
	s.bridges = map[string]*ctlBridge{}
	s.mu.Unlock()
	for _, b := range left {
		_ = b.Close()
	}
}

// serveGateway serves the control API on ln until ctx is done, then shuts
// the HTTP server down and closes the bridges left.
func serveGateway(ctx context.Context, s *gatewayServer, ln net.Listener) error {
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.close() // ends blocked /connected requests
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("control api shutdown: %w", serr)
	}
	if err == nil {
		err = <-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(v); err != nil {
		http.Error(w, "bad json: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, media.ErrBadSDP), errors.Is(err, media.ErrNoOpus):
		return http.StatusBadRequest
	case errors.Is(err, media.ErrNoLeg), errors.Is(err, media.ErrLegExists):
		return http.StatusConflict
	case errors.Is(err, media.ErrClosed):
		return http.StatusGone
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// currentRSS is VmRSS of /proc/self/status in bytes (Linux).
func currentRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// runDelay sums the run_delay (ns runnable but not running) of this
// process's threads from /proc/self/task/*/schedstat; -1 when unknown.
// Threads that exited are not counted (Go rarely ends its threads).
func runDelay() int64 {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return -1
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return -1
		}
		sum += v
	}
	return sum
}
