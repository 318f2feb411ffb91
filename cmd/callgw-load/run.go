package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
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
	Direct        bool          // baseline without the bridge (single-process mode only)
	UDPPort       int           // engine UDP port; 0 = a free one (single-process mode only)
	Baseline      bool          // peers: measure the gateway's bare relay first
	StockCtl      string        // peers: also run against the stock bridge here
	Ctl           string        // peers mode: the gateway's control API address
	Peers         string        // light (default on Linux) or pion
	SendSlots     int           // light peers: send slots per 20 ms frame
	CPUProfile    string        // peers: CPU profile of this process
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
	case c.SendSlots < 1 || c.SendSlots > maxSendSlots || 20*time.Millisecond%time.Duration(c.SendSlots) != 0:
		return fmt.Errorf("-send-slots %d: want 1..%d dividing 20 ms evenly", c.SendSlots, maxSendSlots)
	case c.Peers != peersLight && c.Peers != peersPion:
		return fmt.Errorf("-peers %q: want %s or %s", c.Peers, peersLight, peersPion)
	}
	if c.Ctl != "" {
		if err := loopbackAddr(c.Ctl); err != nil {
			return fmt.Errorf("-ctl: %w", err)
		}
	}
	return nil
}

// direction is what one direction of all calls carried.
type direction struct {
	Sent, Forwarded, Received uint64
	Gaps                      uint64 // packets missing in the received counter sequence
	WindowGaps                uint64 // of Gaps, those seen during the measured window
	NotDelivered              uint64 // sent but never received
	P50, P99, Max             time.Duration
	// WinP50... are the latencies of the packets received during the
	// measured window alone (every call up, no set-up or drain).
	WinP50, WinP99, WinMax time.Duration
}

// report is the outcome of a run.
type report struct {
	Calls, Established int
	Direct             bool
	Peers              string        // light or pion
	Window             time.Duration // all calls up, playing
	ToAgent, ToWA      direction     // meta -> agent, agent -> meta
	SilenceToWA        uint64
	CallsWithAudio     int // calls whose both directions carried audio
	CPU                time.Duration
	RunDelay           time.Duration // this process, over Window: runnable, waiting for a CPU; <0 unknown
	PacketsInWindow    uint64        // packets sent by all peers during Window
	HeapPerCall        int64
	GoroutinesPerCall  float64
	SetupErrors        []string

	// Gateway is the gateway process measured over Window through its
	// control API (nil in the direct baseline). SameProcess: the gateway
	// ran in this process, so its CPU includes the peers'.
	Gateway     *gatewayWindow
	SameProcess bool
	// UDPRcvbufErrors... are the machine's counts of UDP datagrams dropped
	// for a full socket receive buffer (/proc/net/snmp) during call set-up
	// (run start to window start) and from the window's start to the end of
	// the drain; -1 when unknown.
	UDPRcvbufErrorsSetup, UDPRcvbufErrors int64

	lat *latencies
}

// gatewayWindow is the gateway process's resources: at rest (before the
// first call), in steady state (every call up, after GC) and over Window.
type gatewayWindow struct {
	PID, GOMAXPROCS         int
	CPU                     time.Duration // over Window
	Forwarded               uint64        // packets forwarded over Window, both directions
	RunDelay                time.Duration // over Window: runnable, waiting for a CPU; <0 unknown
	Silence                 uint64        // silence frames the pacer sent toward WhatsApp over Window
	Rest, Steady, End       gatewayStats
	HeapPerCall, RSSPerCall int64
	GoroutinesPerCall       float64
}

// simCall is one simulated call.
type simCall struct {
	meta, agent *endpoint
	gw          *ctlClient
	bridgeID    string
}

// run executes one load run against the gateway behind gw (nil: the direct
// baseline, peers connected to each other); everything it starts is stopped
// before it returns.
func run(ctx context.Context, cfg config, gw *ctlClient) (*report, error) {
	frames, err := oggopus.ReadPackets(bytes.NewReader(toneOgg))
	if err != nil {
		return nil, fmt.Errorf("embedded audio: %w", err)
	}
	metaAPI, err := peerAPI(true, metaOpusFmtp)
	if err != nil {
		return nil, err
	}
	agentFmtp := agentOpusFmtp
	if gw == nil {
		// Answering Meta's offer itself, the agent must accept Meta's Opus
		// fmtp (Pion drops a codec whose fmtp only partially matches).
		agentFmtp = ""
	}
	agentAPI, err := peerAPI(false, agentFmtp)
	if err != nil {
		return nil, err
	}
	rep := &report{Calls: cfg.Calls, Direct: gw == nil, Peers: cfg.Peers}
	epoch := time.Now()
	var ln *lightNet
	if cfg.Peers == peersLight {
		if ln, err = newLightNet(epoch, frames, cfg.SendSlots); err != nil {
			return nil, err
		}
		defer ln.close() // after the calls' close below
	}
	heap0, g0 := memGoroutines()
	rcvbufStart, rcvbufStartErr := udpRcvbufErrors()
	var gwRest gatewayStats
	if gw != nil {
		if gwRest, err = gw.stats(ctx, true); err != nil {
			return nil, err
		}
	}

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
		// Tear-down uses its own deadline: ctx may be cancelled by now.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
		defer cancel()
		for _, c := range calls {
			c.close(cctx)
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
			c, err := setupCall(sctx, gw, ln, metaAPI, agentAPI, epoch, onRx)
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
		players.Wait()
		return rep, fmt.Errorf("no call established (%d set-up errors)", len(rep.SetupErrors))
	}

	// Steady state: every call up and playing.
	heap1, g1 := memGoroutines()
	rep.HeapPerCall = (int64(heap1) - int64(heap0)) / int64(rep.Established)
	rep.GoroutinesPerCall = float64(g1-g0) / float64(rep.Established)
	var gwSteady gatewayStats
	if gw != nil {
		if gwSteady, err = gw.stats(ctx, true); err != nil {
			close(stop)
			players.Wait()
			return nil, err
		}
	}
	sent0 := totalSent(calls)
	rcvbuf0, rcvbufErr := udpRcvbufErrors()
	gapsA0, gapsW0 := totalGaps(calls)
	markWindow(calls, 0)
	delay0 := runDelay()
	cpu0, t0 := cpuTime(), time.Now()
	// On stderr, for scripts that profile the window (report: stdout).
	fmt.Fprintf(os.Stderr, "window: %d calls up, measuring %v\n", len(calls), cfg.Duration)
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	rep.CPU, rep.Window = cpuTime()-cpu0, time.Since(t0)
	markWindow(calls, 1)
	rep.RunDelay = -1
	if d1 := runDelay(); d1 >= 0 && delay0 >= 0 {
		rep.RunDelay = time.Duration(d1 - delay0)
	}
	rep.PacketsInWindow = totalSent(calls) - sent0
	gapsA1, gapsW1 := totalGaps(calls)
	rep.ToAgent.WindowGaps, rep.ToWA.WindowGaps = gapsA1-gapsA0, gapsW1-gapsW0
	var gwEnd gatewayStats
	if gw != nil {
		// Not ctx: the run may have been cut short by a signal.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
		gwEnd, err = gw.stats(sctx, false)
		cancel()
		if err != nil {
			close(stop)
			players.Wait()
			return nil, err
		}
	}
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
	rep.UDPRcvbufErrorsSetup, rep.UDPRcvbufErrors = -1, -1
	if rcvbuf1, err := udpRcvbufErrors(); err == nil && rcvbufErr == nil {
		rep.UDPRcvbufErrors = int64(rcvbuf1 - rcvbuf0)
		if rcvbufStartErr == nil {
			rep.UDPRcvbufErrorsSetup = int64(rcvbuf0 - rcvbufStart)
		}
	}
	for _, c := range calls {
		rep.collect(c)
	}
	rep.finish()
	if gw != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
		final, err := gw.stats(sctx, false)
		cancel()
		if err != nil {
			return nil, err
		}
		rep.ToAgent.Forwarded = final.ForwardedToAgent - gwRest.ForwardedToAgent
		rep.ToWA.Forwarded = final.ForwardedToWA - gwRest.ForwardedToWA
		n := int64(rep.Established)
		rep.Gateway = &gatewayWindow{
			PID: gwEnd.PID, GOMAXPROCS: gwEnd.GOMAXPROCS,
			CPU: time.Duration(gwEnd.CPUNanos - gwSteady.CPUNanos),
			Forwarded: gwEnd.ForwardedToAgent + gwEnd.ForwardedToWA -
				gwSteady.ForwardedToAgent - gwSteady.ForwardedToWA,
			Silence:  gwEnd.Silence - gwSteady.Silence,
			RunDelay: -1,
			Rest:     gwRest, Steady: gwSteady, End: gwEnd,
			HeapPerCall:       (int64(gwSteady.HeapBytes) - int64(gwRest.HeapBytes)) / n,
			RSSPerCall:        (gwSteady.RSSBytes - gwRest.RSSBytes) / n,
			GoroutinesPerCall: float64(gwSteady.Goroutines-gwRest.Goroutines) / float64(n),
		}
		if gwEnd.RunDelayNanos >= 0 && gwSteady.RunDelayNanos >= 0 {
			rep.Gateway.RunDelay = time.Duration(gwEnd.RunDelayNanos - gwSteady.RunDelayNanos)
		}
		rep.SameProcess = gwEnd.PID == os.Getpid()
	}
	return rep, nil
}

// setupCall makes one call: a Meta-like peer and an agent-like peer, bridged
// by the gateway through its control API (or, gw nil, connected directly).
func setupCall(ctx context.Context, gw *ctlClient, ln *lightNet, metaAPI, agentAPI *webrtc.API,
	epoch time.Time, onRx func()) (c *simCall, err error) {
	c = &simCall{gw: gw}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			c.close(cctx)
		}
	}()
	var metaLP, agentLP *lightPeer
	if ln != nil {
		agentFmtp := agentOpusFmtp
		if gw == nil {
			agentFmtp = ""
		}
		if metaLP, metaAPI, err = ln.newPeer(true, metaOpusFmtp); err != nil {
			return c, err
		}
		if agentLP, agentAPI, err = ln.newPeer(false, agentFmtp); err != nil {
			metaLP.release()
			return c, err
		}
	}
	if c.meta, err = newEndpoint(metaAPI, metaLP, epoch, onRx); err != nil {
		if metaLP != nil {
			metaLP.release()
			agentLP.release()
		}
		return c, err
	}
	if c.agent, err = newEndpoint(agentAPI, agentLP, epoch, onRx); err != nil {
		if agentLP != nil {
			agentLP.release()
		}
		return c, err
	}
	offer, err := c.meta.offer(ctx)
	if err != nil {
		return c, err
	}
	if gw == nil { // baseline: Meta-like peer straight to the agent-like peer
		answer, err := c.agent.answer(ctx, offer, true)
		if err != nil {
			return c, err
		}
		if err := c.meta.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			return c, err
		}
		if err := waitAll(ctx, c.meta.connected, c.agent.connected); err != nil {
			return c, err
		}
		return c, errors.Join(c.meta.lightErr, c.agent.lightErr)
	}
	var id idMsg
	if err := gw.do(ctx, http.MethodPost, "/bridges", nil, &id); err != nil {
		return c, err
	}
	c.bridgeID = id.ID
	var answer sdpMsg
	if err := gw.do(ctx, http.MethodPost, bridgePath(id.ID, "whatsapp-offer"), sdpMsg{SDP: offer}, &answer); err != nil {
		return c, err
	}
	if err := c.meta.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return c, err
	}
	var agentOffer sdpMsg
	if err := gw.do(ctx, http.MethodPost, bridgePath(id.ID, "agent-offer"), nil, &agentOffer); err != nil {
		return c, err
	}
	for _, cand := range agentOffer.Candidates {
		c.agent.addCandidate(cand)
	}
	agentAnswer, err := c.agent.answer(ctx, agentOffer.SDP, true)
	if err != nil {
		return c, err
	}
	if err := gw.do(ctx, http.MethodPost, bridgePath(id.ID, "agent-answer"), sdpMsg{SDP: agentAnswer}, nil); err != nil {
		return c, err
	}
	if err := waitAll(ctx, c.meta.connected, c.agent.connected); err != nil {
		return c, err
	}
	if err := errors.Join(c.meta.lightErr, c.agent.lightErr); err != nil {
		return c, fmt.Errorf("light peer: %w", err)
	}
	// Both gateway legs connected too, so the first packets are forwarded.
	return c, gw.do(ctx, http.MethodGet, bridgePath(id.ID, "connected"), nil, nil)
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

func (c *simCall) close(ctx context.Context) {
	if c.bridgeID != "" {
		_ = c.gw.do(ctx, http.MethodDelete, bridgePath(c.bridgeID, ""), nil, nil)
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

// gwEndOK: both run-delay readings of the gateway were known.
func gwEndOK(gw *gatewayWindow) bool {
	return gw.Rest.RunDelayNanos >= 0 && gw.Steady.RunDelayNanos >= 0
}

// totalGaps sums the gaps seen so far per direction.
func totalGaps(calls []*simCall) (toAgent, toWA uint64) {
	for _, c := range calls {
		c.agent.rx.mu.Lock()
		toAgent += c.agent.rx.gaps
		c.agent.rx.mu.Unlock()
		c.meta.rx.mu.Lock()
		toWA += c.meta.rx.gaps
		c.meta.rx.mu.Unlock()
	}
	return toAgent, toWA
}

func markWindow(calls []*simCall, i int) {
	for _, c := range calls {
		c.agent.rx.markWindow(i)
		c.meta.rx.markWindow(i)
	}
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
	add := func(d *direction, sent uint64, rx *stream, lat, win *[]time.Duration) {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		d.Sent += sent
		d.Received += rx.received
		d.Gaps += rx.gaps
		if sent > rx.received {
			d.NotDelivered += sent - rx.received
		}
		*lat = append(*lat, rx.lat...)
		*win = append(*win, rx.lat[rx.win[0]:max(rx.win[0], rx.win[1])]...)
	}
	if r.lat == nil {
		r.lat = &latencies{}
	}
	add(&r.ToAgent, c.meta.sent.Load(), &c.agent.rx, &r.lat.toAgent, &r.lat.winToAgent)
	add(&r.ToWA, c.agent.sent.Load(), &c.meta.rx, &r.lat.toWA, &r.lat.winToWA)
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
	r.ToAgent.WinP50, r.ToAgent.WinP99, r.ToAgent.WinMax = percentiles(r.lat.winToAgent)
	r.ToWA.WinP50, r.ToWA.WinP99, r.ToWA.WinMax = percentiles(r.lat.winToWA)
}

type latencies struct{ toAgent, toWA, winToAgent, winToWA []time.Duration }

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
	mode += ", " + r.Peers + " peers"
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
	fmt.Fprintf(w, "gaps in the window: to_agent %d to_whatsapp %d (the rest during set-up/drain)\n", r.ToAgent.WindowGaps, r.ToWA.WindowGaps)
	fmt.Fprintf(w, "latency in the window (every call up): to_agent p50 %v p99 %v max %v; to_whatsapp p50 %v p99 %v max %v\n",
		r.ToAgent.WinP50.Round(time.Microsecond), r.ToAgent.WinP99.Round(time.Microsecond), r.ToAgent.WinMax.Round(time.Microsecond),
		r.ToWA.WinP50.Round(time.Microsecond), r.ToWA.WinP99.Round(time.Microsecond), r.ToWA.WinMax.Round(time.Microsecond))
	if r.UDPRcvbufErrors >= 0 {
		fmt.Fprintf(w, "udp datagrams dropped by the kernel for full receive buffers (whole machine): set-up %d, window+drain %d\n",
			r.UDPRcvbufErrorsSetup, r.UDPRcvbufErrors)
	}
	n := max(r.Established, 1)
	fmt.Fprintf(w, "window %v: cpu %.2f s (%.1f%% of one core), per call %.4f cpu-s/s, per packet %.1f µs (%d packets)\n",
		r.Window.Round(time.Millisecond), r.CPU.Seconds(), 100*r.CPU.Seconds()/r.Window.Seconds(),
		r.CPU.Seconds()/r.Window.Seconds()/float64(n), float64(r.CPU.Microseconds())/float64(max(r.PacketsInWindow, 1)), r.PacketsInWindow)
	fmt.Fprintf(w, "this process: heap per call %d KB, goroutines per call %.1f\n", r.HeapPerCall/1024, r.GoroutinesPerCall)
	if r.Gateway == nil {
		return
	}
	gw := r.Gateway
	who := "separate process"
	if r.SameProcess {
		who = "same process as the peers: CPU includes theirs"
	}
	frac := gw.CPU.Seconds() / r.Window.Seconds() // cores busy
	perCall := frac / float64(n)
	implied := 0.0
	if perCall > 0 {
		implied = 1 / perCall
	}
	fmt.Fprintf(w, "gateway pid %d (%s), GOMAXPROCS %d: cpu %.2f s = %.1f%% of one core; per call %.3f%% of a core; per forwarded packet %.1f µs (%d forwarded); implies %.0f calls per fully busy core\n",
		gw.PID, who, gw.GOMAXPROCS, gw.CPU.Seconds(), 100*frac, 100*perCall,
		float64(gw.CPU.Nanoseconds())/1e3/float64(max(gw.Forwarded, 1)), gw.Forwarded, implied)
	if gw.RunDelay >= 0 {
		fmt.Fprintf(w, "gateway threads runnable but waiting for a CPU: %.2f s in the window (its own threads on its core included; more means other processes took the core)\n", gw.RunDelay.Seconds())
	}
	fmt.Fprintf(w, "gateway silence frames toward whatsapp in the window: %d (filling late agent audio)\n", gw.Silence)
	if d := gw.End.ForwardDelay.Sub(gw.Steady.ForwardDelay); d.Total() > 0 {
		fmt.Fprintf(w, "gateway forward delay in the window (socket arrival -> sendmmsg returned, %d packets): p50 %v p99 %v p99.9 %v (%v buckets)\n",
			d.Total(), d.Quantile(0.5), d.Quantile(0.99), d.Quantile(0.999), d.Bucket)
	}
	if s0, s1 := gw.Steady.Socket, gw.End.Socket; s1.RecvCalls > s0.RecvCalls && s1.SendCalls > s0.SendCalls {
		fmt.Fprintf(w, "gateway socket in the window: %.1f datagrams per recvmmsg (%d calls), %.1f per sendmmsg (%d calls)\n",
			float64(s1.RecvDatagrams-s0.RecvDatagrams)/float64(s1.RecvCalls-s0.RecvCalls), s1.RecvCalls-s0.RecvCalls,
			float64(s1.SendDatagrams-s0.SendDatagrams)/float64(s1.SendCalls-s0.SendCalls), s1.SendCalls-s0.SendCalls)
	}
	if n := gw.Forwarded + gw.Silence; n > 0 {
		// silence frames cost a send each: with starved peers they are many
		fmt.Fprintf(w, "gateway cpu per packet sent (forwarded + silence): %.1f µs\n", float64(gw.CPU.Nanoseconds())/1e3/float64(n))
	}
	fmt.Fprintf(w, "gateway memory: rss %d MB (at rest %d MB, peak %d MB), per call rss %d KB heap %d KB goroutines %.1f\n",
		gw.Steady.RSSBytes>>20, gw.Rest.RSSBytes>>20, gw.Steady.MaxRSSBytes>>20,
		gw.RSSPerCall/1024, gw.HeapPerCall/1024, gw.GoroutinesPerCall)
	if !r.SameProcess {
		procs := runtime.GOMAXPROCS(0)
		fmt.Fprintf(w, "peers pid %d, GOMAXPROCS %d: %.1f%% of its %d core(s) busy, threads waited %.2f s for a CPU\n",
			os.Getpid(), procs, 100*r.CPU.Seconds()/r.Window.Seconds()/float64(procs), procs, r.RunDelay.Seconds())
	}
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

// counters are the engine's packet counters, read from its registry.
type counters struct {
	forwarded, dropped map[string]uint64 // by direction
	silence            uint64
}

func engineCounters(reg *prometheus.Registry) (counters, error) {
	c := counters{forwarded: map[string]uint64{}, dropped: map[string]uint64{}}
	mfs, err := reg.Gather()
	if err != nil {
		return c, fmt.Errorf("gather metrics: %w", err)
	}
	for _, mf := range mfs {
		var into map[string]uint64
		switch mf.GetName() {
		case "callgw_media_packets_forwarded_total":
			into = c.forwarded
		case "callgw_media_packets_dropped_total":
			into = c.dropped
		case "callgw_media_silence_packets_total":
			for _, m := range mf.GetMetric() {
				c.silence += uint64(m.GetCounter().GetValue())
			}
			continue
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" {
					into[l.GetValue()] += uint64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return c, nil
}

// loopbackAddr checks that addr is host:port on a loopback IP: the control
// API has no authentication.
func loopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: host must be a loopback IP (the control API is unauthenticated)", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port", addr)
	}
	return nil
}

// udpRcvbufErrors reads Udp RcvbufErrors from /proc/net/snmp (Linux).
func udpRcvbufErrors() (uint64, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, fmt.Errorf("read snmp: %w", err)
	}
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse RcvbufErrors %q: %w", f[i], err)
				}
				return v, nil
			}
		}
	}
	return 0, errors.New("no Udp RcvbufErrors in /proc/net/snmp")
}
