package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/media"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// toneOgg is 10 s of a 440 Hz tone, Opus in Ogg, 20 ms frames (a copy of
// metasim/assets/tone-440.ogg).
//
//go:embed tone-440.ogg
var toneOgg []byte

const (
	metaOpusFmtp  = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;useinbandfec=1"
	agentOpusFmtp = "minptime=10;useinbandfec=1"
	setupTimeout  = 30 * time.Second
	drainTimeout  = 2 * time.Second
	maxCalls      = 2000
)

// config is the load run's settings (flags).
type config struct {
	Calls         int           // simulated calls; default 10
	Duration      time.Duration // audio time once every call is up; default 10s
	Ramp          time.Duration // call set-up spread; default 0
	SetupParallel int           // calls set up at once; default 8
	Direct        bool          // baseline without the bridge
	UDPPort       int           // engine UDP port; 0 = a free one
}

func (c config) validate() error {
	switch {
	case c.Calls < 1 || c.Calls > maxCalls:
		return fmt.Errorf("-calls %d outside 1..%d", c.Calls, maxCalls)
	case c.Duration <= 0 || c.Duration > time.Hour:
		return fmt.Errorf("-duration %v outside (0, 1h]", c.Duration)
	case c.Ramp < 0 || c.Ramp > time.Hour:
		return fmt.Errorf("-ramp %v outside [0, 1h]", c.Ramp)
	case c.SetupParallel < 1:
		return fmt.Errorf("-setup-parallel %d must be >= 1", c.SetupParallel)
	case c.UDPPort < 0 || c.UDPPort > 65535:
		return fmt.Errorf("-port %d out of range", c.UDPPort)
	}
	return nil
}

// direction is what one direction of all calls carried.
type direction struct {
	Sent, Forwarded, Received uint64
	Gaps                      uint64 // packets missing in the received counter sequence
	NotDelivered              uint64 // sent but never received
	P50, P99, Max             time.Duration
}

// report is the outcome of a run.
type report struct {
	Calls, Established int
	Direct             bool
	Window             time.Duration // all calls up, playing
	ToAgent, ToWA      direction     // meta -> agent, agent -> meta
	SilenceToWA        uint64
	CallsWithAudio     int // calls whose both directions carried audio
	CPU                time.Duration
	PacketsInWindow    uint64 // packets sent by all peers during Window
	HeapPerCall        int64
	GoroutinesPerCall  float64
	SetupErrors        []string

	lat *latencies
}

// simCall is one simulated call.
type simCall struct {
	meta, agent *endpoint
	bridge      *media.Bridge
}

// run executes one load run; everything it starts is stopped before it
// returns.
func run(ctx context.Context, cfg config) (*report, error) {
	frames, err := oggopus.ReadPackets(bytes.NewReader(toneOgg))
	if err != nil {
		return nil, fmt.Errorf("embedded audio: %w", err)
	}
	metaAPI, err := peerAPI(true, metaOpusFmtp)
	if err != nil {
		return nil, err
	}
	agentFmtp := agentOpusFmtp
	if cfg.Direct {
		// Answering Meta's offer itself, the agent must accept Meta's Opus
		// fmtp (Pion drops a codec whose fmtp only partially matches).
		agentFmtp = ""
	}
	agentAPI, err := peerAPI(false, agentFmtp)
	if err != nil {
		return nil, err
	}
	rep := &report{Calls: cfg.Calls, Direct: cfg.Direct}
	heap0, g0 := memGoroutines()

	var eng *media.Engine
	reg := prometheus.NewRegistry()
	if !cfg.Direct {
		port := cfg.UDPPort
		if port == 0 {
			if port, err = freeUDPPort(); err != nil {
				return nil, err
			}
		}
		eng, err = media.NewEngine(media.Config{LoopbackOnly: true, UDPPort: port,
			Logger: slog.New(slog.DiscardHandler)}, reg)
		if err != nil {
			return nil, err
		}
		defer eng.Close()
	}

	epoch := time.Now()
	rxNotify := make(chan struct{}, 1)
	onRx := func() {
		select {
		case rxNotify <- struct{}{}:
		default:
		}
	}
	stop := make(chan struct{})
	var players sync.WaitGroup
	var mu sync.Mutex
	var calls []*simCall
	defer func() {
		for _, c := range calls {
			c.close()
		}
	}()

	g := new(errgroup.Group)
	g.SetLimit(cfg.SetupParallel)
	start := time.Now()
	for i := range cfg.Calls {
		if cfg.Ramp > 0 {
			at := start.Add(cfg.Ramp * time.Duration(i) / time.Duration(cfg.Calls))
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			sctx, cancel := context.WithTimeout(ctx, setupTimeout)
			defer cancel()
			c, err := setupCall(sctx, eng, metaAPI, agentAPI, fmt.Sprintf("load-%d", i), epoch, onRx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.SetupErrors = append(rep.SetupErrors, err.Error())
				return nil
			}
			calls = append(calls, c)
			players.Add(2)
			go func() { defer players.Done(); c.meta.play(stop, frames, epoch) }()
			go func() { defer players.Done(); c.agent.play(stop, frames, epoch) }()
			return nil
		})
	}
	_ = g.Wait()
	rep.Established = len(calls)
	if rep.Established == 0 {
		close(stop)
		return rep, fmt.Errorf("no call established (%d set-up errors)", len(rep.SetupErrors))
	}

	// Steady state: every call up and playing.
	heap1, g1 := memGoroutines()
	rep.HeapPerCall = (int64(heap1) - int64(heap0)) / int64(rep.Established)
	rep.GoroutinesPerCall = float64(g1-g0) / float64(rep.Established)
	sent0 := totalSent(calls)
	cpu0, t0 := cpuTime(), time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	rep.CPU, rep.Window = cpuTime()-cpu0, time.Since(t0)
	rep.PacketsInWindow = totalSent(calls) - sent0
	close(stop)
	players.Wait()

	// Let packets in flight arrive (bounded).
	drain := time.After(drainTimeout)
	for !allDelivered(calls) {
		select {
		case <-rxNotify:
			continue
		case <-drain:
		}
		break
	}
	for _, c := range calls {
		rep.collect(c)
	}
	rep.finish()
	if eng != nil {
		fwd, err := forwarded(reg)
		if err != nil {
			return nil, err
		}
		rep.ToAgent.Forwarded, rep.ToWA.Forwarded = fwd["to_agent"], fwd["to_whatsapp"]
	}
	return rep, nil
}

func setupCall(ctx context.Context, eng *media.Engine, metaAPI, agentAPI *webrtc.API, id string,
	epoch time.Time, onRx func()) (c *simCall, err error) {
	c = &simCall{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.meta, err = newEndpoint(metaAPI, epoch, onRx); err != nil {
		return c, err
	}
	if c.agent, err = newEndpoint(agentAPI, epoch, onRx); err != nil {
		return c, err
	}
	offer, err := c.meta.offer(ctx)
	if err != nil {
		return c, err
	}
	if eng == nil { // baseline: Meta-like peer straight to the agent-like peer
		answer, err := c.agent.answer(ctx, offer, true)
		if err != nil {
			return c, err
		}
		if err := c.meta.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			return c, err
		}
		return c, waitAll(ctx, c.meta.connected, c.agent.connected)
	}
	waUp, agUp := make(chan struct{}), make(chan struct{})
	var waOnce, agOnce sync.Once
	agent := c.agent
	c.bridge, err = eng.NewBridge(id, media.Events{
		OnAgentCandidate: agent.addCandidate,
		OnWhatsAppState: func(s media.LegState) {
			if s == media.LegConnected {
				waOnce.Do(func() { close(waUp) })
			}
		},
		OnAgentState: func(s media.LegState) {
			if s == media.LegConnected {
				agOnce.Do(func() { close(agUp) })
			}
		},
	})
	if err != nil {
		return c, fmt.Errorf("new bridge: %w", err)
	}
	answer, err := c.bridge.AnswerWhatsApp(ctx, offer)
	if err != nil {
		return c, err
	}
	if err := c.meta.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return c, err
	}
	agentOffer, err := c.bridge.OfferAgent(ctx)
	if err != nil {
		return c, err
	}
	agentAnswer, err := c.agent.answer(ctx, agentOffer, true)
	if err != nil {
		return c, err
	}
	if err := c.bridge.SetAgentAnswer(agentAnswer); err != nil {
		return c, err
	}
	return c, waitAll(ctx, c.meta.connected, c.agent.connected, waUp, agUp)
}

func waitAll(ctx context.Context, chs ...chan struct{}) error {
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("call set-up: %w", ctx.Err())
		}
	}
	return nil
}

func (c *simCall) close() {
	if c.bridge != nil {
		_ = c.bridge.Close()
	}
	for _, p := range []*endpoint{c.meta, c.agent} {
		if p != nil {
			_ = p.close()
		}
	}
}

func totalSent(calls []*simCall) uint64 {
	var n uint64
	for _, c := range calls {
		n += c.meta.sent.Load() + c.agent.sent.Load()
	}
	return n
}

func allDelivered(calls []*simCall) bool {
	for _, c := range calls {
		c.agent.rx.mu.Lock()
		a := c.agent.rx.received
		c.agent.rx.mu.Unlock()
		c.meta.rx.mu.Lock()
		m := c.meta.rx.received
		c.meta.rx.mu.Unlock()
		if a < c.meta.sent.Load() || m < c.agent.sent.Load() {
			return false
		}
	}
	return true
}

// collect adds one call's counts and latencies (percentiles: finish).
func (r *report) collect(c *simCall) {
	add := func(d *direction, sent uint64, rx *stream, lat *[]time.Duration) {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		d.Sent += sent
		d.Received += rx.received
		d.Gaps += rx.gaps
		if sent > rx.received {
			d.NotDelivered += sent - rx.received
		}
		*lat = append(*lat, rx.lat...)
	}
	if r.lat == nil {
		r.lat = &latencies{}
	}
	add(&r.ToAgent, c.meta.sent.Load(), &c.agent.rx, &r.lat.toAgent)
	add(&r.ToWA, c.agent.sent.Load(), &c.meta.rx, &r.lat.toWA)
	c.meta.rx.mu.Lock()
	r.SilenceToWA += c.meta.rx.silence
	toWA := c.meta.rx.received
	c.meta.rx.mu.Unlock()
	c.agent.rx.mu.Lock()
	toAgent := c.agent.rx.received
	c.agent.rx.mu.Unlock()
	if toWA > 0 && toAgent > 0 {
		r.CallsWithAudio++
	}
}

// finish computes the latency percentiles of all collected calls.
func (r *report) finish() {
	if r.lat == nil {
		return
	}
	r.ToAgent.P50, r.ToAgent.P99, r.ToAgent.Max = percentiles(r.lat.toAgent)
	r.ToWA.P50, r.ToWA.P99, r.ToWA.Max = percentiles(r.lat.toWA)
}

type latencies struct{ toAgent, toWA []time.Duration }

func percentiles(l []time.Duration) (p50, p99, mx time.Duration) {
	if len(l) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100], s[len(s)-1]
}

func (r *report) print(w io.Writer) {
	mode := "bridged (media.Engine, one UDP port)"
	if r.Direct {
		mode = "direct baseline (no bridge)"
	}
	fmt.Fprintf(w, "mode: %s\ncalls: %d requested, %d established, %d with audio both ways\n", mode, r.Calls, r.Established, r.CallsWithAudio)
	for _, e := range r.SetupErrors {
		fmt.Fprintf(w, "setup error: %s\n", e)
	}
	for _, d := range []struct {
		name string
		d    direction
	}{{"to_agent   ", r.ToAgent}, {"to_whatsapp", r.ToWA}} {
		fmt.Fprintf(w, "%s sent %d forwarded %d received %d gaps %d not_delivered %d latency p50 %v p99 %v max %v\n",
			d.name, d.d.Sent, d.d.Forwarded, d.d.Received, d.d.Gaps, d.d.NotDelivered,
			d.d.P50.Round(time.Microsecond), d.d.P99.Round(time.Microsecond), d.d.Max.Round(time.Microsecond))
	}
	if !r.Direct {
		fmt.Fprintf(w, "silence frames to whatsapp: %d\n", r.SilenceToWA)
	}
	n := max(r.Established, 1)
	fmt.Fprintf(w, "window %v: cpu %.2f s (%.1f%% of one core), per call %.4f cpu-s/s, per packet %.1f µs (%d packets)\n",
		r.Window.Round(time.Millisecond), r.CPU.Seconds(), 100*r.CPU.Seconds()/r.Window.Seconds(),
		r.CPU.Seconds()/r.Window.Seconds()/float64(n), float64(r.CPU.Microseconds())/float64(max(r.PacketsInWindow, 1)), r.PacketsInWindow)
	fmt.Fprintf(w, "heap per call %d KB, goroutines per call %.1f\n", r.HeapPerCall/1024, r.GoroutinesPerCall)
}

func memGoroutines() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// cpuTime is the user+system CPU time of the process (getrusage).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, fmt.Errorf("free udp port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// forwarded reads callgw_media_packets_forwarded_total by direction.
func forwarded(reg *prometheus.Registry) (map[string]uint64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "callgw_media_packets_forwarded_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" {
					out[l.GetValue()] = uint64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out, nil
}
