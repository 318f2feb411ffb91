package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/internal/mediadiag"
)

// Events are the bridge's callbacks. All are optional. They are called from
// media goroutines and must not block (and must not call Bridge.Close
// synchronously: hand off to another goroutine). None is called after Close
// returns.
type Events struct {
	// OnAgentCandidate trickles our ICE candidates toward the agent browser.
	OnAgentCandidate func(c webrtc.ICECandidateInit)
	// OnAgentState reports the current agent leg's state changes.
	OnAgentState func(s LegState)
	// OnWhatsAppState reports the WhatsApp leg's state changes.
	OnWhatsAppState func(s LegState)
	// OnMediaTimeout fires once when, after ArmWatchdog, the WhatsApp leg
	// receives no RTP for Config.MediaStartTimeout (none yet) or
	// Config.MediaTimeout (after some). Never before ArmWatchdog.
	OnMediaTimeout func()
	// OnDTMF reports an RFC 4733 digit from the WhatsApp user, once per
	// digit, at the end of the event.
	OnDTMF func(digit rune)
	// OnSideCandidate trickles our ICE candidates toward side leg id's
	// browser (see OfferSide).
	OnSideCandidate func(id string, c webrtc.ICECandidateInit)
	// OnSideState reports side leg id's state changes (not after it was
	// closed or promoted).
	OnSideState func(id string, s LegState)
}

// LegStats are one leg's counters. Received figures describe what the
// remote sent us; sent figures what we sent it.
type LegStats struct {
	PacketsReceived uint64
	BytesReceived   uint64 // RTP payload bytes
	PacketsSent     uint64
	BytesSent       uint64 // RTP payload bytes
	PacketsLost     uint64 // from received sequence gaps (current stream)
	Jitter          time.Duration
	RTT             time.Duration // from RTCP reception reports; 0 = unknown
	LastPacketAt    time.Time     // last RTP received; zero = none
}

// Stats are a bridge's per-leg statistics.
type Stats struct {
	WhatsApp LegStats
	Agent    LegStats // the current agent leg (sent/received accumulate across replacements)
}

// Bridge joins a call's WhatsApp leg and agent leg.
type Bridge struct {
	// What the pacer reads for every bridge every 20 ms comes first, in one
	// cache line: with 1,000 bridges a tick's scan is then one miss per
	// bridge when nothing is due, not one per field.
	isShut       atomic.Bool
	waConnected  atomic.Bool
	timeoutFired atomic.Bool
	// waStarted: RTP toward WhatsApp may carry agent audio and DTMF
	// (StartWhatsAppMedia). waSilenceOK: before that, silence and RTCP may
	// flow (business-initiated calls, or Config.SilenceBeforeAccept).
	waStarted   atomic.Bool
	waSilenceOK atomic.Bool
	armedAt     atomic.Int64 // unix nanos; 0 = watchdog not armed
	lastWARx    atomic.Int64 // unix nanos
	rtcpNext    time.Time    // pacer only
	snapNext    time.Time    // pacer only: next stats snapshot of legs not connected

	id  string
	e   *Engine
	ev  Events
	log *slog.Logger

	mu     sync.Mutex // guards closed, wa, agent writes and wg.Add
	closed bool
	wg     sync.WaitGroup
	wa     *leg // set under mu; waPtr mirrors it for the pacer
	waPtr  atomic.Pointer[leg]
	agent  atomic.Pointer[leg]

	out  outState // everything we send toward WhatsApp
	side sideSet  // side legs (side.go)
	waRx rxStats
	agRx rxStats

	agTxPkts, agTxBytes atomic.Uint64
	agLastTS            atomic.Uint32
	agLastSendNS        atomic.Int64
	waRTT, agRTT        atomic.Int64
}

// leg is one PeerConnection with our single outgoing track.
type leg struct {
	kind      legKind
	connected atomic.Bool
	pc        *webrtc.PeerConnection
	track     *outTrack
	sender    *webrtc.RTPSender
	rttFresh  atomic.Bool // an RTT sample arrived since the last report
	// snap is the leg's last stats snapshot while not connected: Pion drops
	// the candidate pairs when ICE fails, and a diagnosis needs them.
	snap atomic.Pointer[webrtc.StatsReport]
	born time.Time // when the leg was built (snapshots only for legs slow to connect)
	// state is the leg's last PeerConnection state (LegState): stats are
	// read only while new/connecting/connected, never on a leg Pion may be
	// closing (Pion's GetStats races its own close).
	state atomic.Uint32
	fast  atomic.Pointer[fastLeg] // PathFast, once connected
	// aux is the second track toward an agent or side browser (side.go):
	// on the agent leg what the talking side says, on a side leg the agent.
	aux  *outTrack
	side *sideLeg // a side leg (possibly promoted to agent leg); nil otherwise
}

func newBridge(e *Engine, id string, ev Events) *Bridge {
	b := &Bridge{id: id, e: e, ev: ev, log: e.log.With("bridge", id)}
	b.out.seq = uint16(rand.Uint32())
	b.out.ts = rand.Uint32()
	b.out.silence = [3]byte{0xf8, 0xff, 0xfe}
	b.out.hdr.Version = 2
	b.waRx.clockRate = 48000
	b.agRx.clockRate = 48000
	// spread RTCP of many bridges over the interval
	b.rtcpNext = time.Now().Add(time.Duration(rand.Int64N(int64(rtcpInterval))))
	return b
}

// enter registers a callback or goroutine with the bridge; false once closed.
func (b *Bridge) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

// newPC builds leg l's PeerConnection from tpl, with l's RTCP handled by
// rtcpSinks (no RTCP read goroutines).
func (b *Bridge) newPC(tpl apiTemplate, l *leg, ice []webrtc.ICEServer) (*webrtc.PeerConnection, error) {
	cert, err := b.e.certificate()
	if err != nil {
		return nil, err
	}
	pc, err := tpl.api(b.legBuffers(l)).NewPeerConnection(webrtc.Configuration{
		ICEServers:    ice,
		Certificates:  []webrtc.Certificate{cert},
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return nil, fmt.Errorf("media: new peer connection: %w", err)
	}
	return pc, nil
}

// newWhatsAppLeg builds the WhatsApp PeerConnection with our one track.
func (b *Bridge) newWhatsAppLeg(tpl apiTemplate) (*leg, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.wa != nil {
		return nil, ErrLegExists
	}
	l := &leg{kind: legWhatsApp, track: b.out.initTrack(), born: time.Now()}
	pc, err := b.newPC(tpl, l, nil)
	if err != nil {
		return nil, err
	}
	l.pc = pc
	if l.sender, err = pc.AddTrack(l.track); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("media: add whatsapp track: %w", err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { b.onWAState(s) })
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { b.onTrack(l, t, r) })
	b.wa = l
	b.waPtr.Store(l)
	return l, nil
}

// dropWhatsAppLeg undoes newWhatsAppLeg after a failed negotiation.
func (b *Bridge) dropWhatsAppLeg(l *leg) {
	b.mu.Lock()
	if b.wa == l {
		b.wa = nil
		b.waPtr.Store(nil)
	}
	b.mu.Unlock()
	_ = l.pc.GracefulClose()
}

// AnswerWhatsApp applies Meta's offer (user-initiated call) and returns our
// answer with ICE gathering complete (no trickle toward Meta). Bad SDP
// yields an error wrapping ErrBadSDP or ErrNoOpus and leaves nothing running.
// ICE and DTLS may complete at once, but nothing (no RTP, no RTCP) is sent
// toward WhatsApp until StartWhatsAppMedia (Config.SilenceBeforeAccept:
// silence and RTCP only).
func (b *Bridge) AnswerWhatsApp(ctx context.Context, offer string) (string, error) {
	if err := checkRemoteSDP(offer); err != nil {
		return "", err
	}
	l, err := b.newWhatsAppLeg(b.e.waAPI)
	if err != nil {
		return "", err
	}
	b.waSilenceOK.Store(b.e.cfg.SilenceBeforeAccept)
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		b.dropWhatsAppLeg(l)
		return "", fmt.Errorf("%w: apply whatsapp offer: %w", ErrBadSDP, err)
	}
	answer, err := l.pc.CreateAnswer(nil)
	if err != nil {
		b.dropWhatsAppLeg(l)
		return "", fmt.Errorf("%w: create whatsapp answer: %w", ErrBadSDP, err)
	}
	sdp, err := b.setLocalAndGather(ctx, l, answer)
	if err != nil {
		b.dropWhatsAppLeg(l)
		return "", err
	}
	return sdp, nil
}

// OfferWhatsApp creates the WhatsApp leg for a business-initiated call and
// returns our offer (Opus 111, telephone-event 126, a=setup:actpass) with
// ICE gathering complete. Until StartWhatsAppMedia, the leg carries Opus
// silence (and RTCP) only, never agent audio or DTMF.
func (b *Bridge) OfferWhatsApp(ctx context.Context) (string, error) {
	l, err := b.newWhatsAppLeg(b.e.waOffer)
	if err != nil {
		return "", err
	}
	b.waSilenceOK.Store(true) // before pickup: silence only
	offer, err := l.pc.CreateOffer(nil)
	if err != nil {
		b.dropWhatsAppLeg(l)
		return "", fmt.Errorf("media: create whatsapp offer: %w", err)
	}
	sdp, err := b.setLocalAndGather(ctx, l, offer)
	if err != nil {
		b.dropWhatsAppLeg(l)
		return "", err
	}
	return sdp, nil
}

// SetWhatsAppAnswer applies Meta's answer to OfferWhatsApp's offer.
func (b *Bridge) SetWhatsAppAnswer(answer string) error {
	if err := checkRemoteSDP(answer); err != nil {
		return err
	}
	b.mu.Lock()
	l, closed := b.wa, b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if l == nil || l.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return fmt.Errorf("%w: no pending whatsapp offer", ErrNoLeg)
	}
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: apply whatsapp answer: %w", ErrBadSDP, err)
	}
	return nil
}

func (b *Bridge) setLocalAndGather(ctx context.Context, l *leg, d webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(l.pc)
	if err := l.pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("media: set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("media: ice gathering: %w", ctx.Err())
	}
	return l.pc.LocalDescription().SDP, nil
}

// OfferAgent creates the agent leg, or replaces it (the agent reloaded the
// page), and returns our offer; candidates trickle via OnAgentCandidate.
// Replacing keeps the WhatsApp leg and its RTP continuity.
func (b *Bridge) OfferAgent(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if b.isShut.Load() {
		return "", ErrClosed
	}
	l := &leg{kind: legAgent, track: newOutTrack("audio", "callgw-"+b.id), born: time.Now(),
		aux: newOutTrack("side", "callgw-"+b.id)}
	pc, err := b.newPC(b.e.agAPI, l, b.e.cfg.AgentICEServers)
	if err != nil {
		return "", err
	}
	l.pc = pc
	if l.sender, err = pc.AddTrack(l.track); err != nil {
		_ = pc.Close()
		return "", fmt.Errorf("media: add agent track: %w", err)
	}
	if _, err = pc.AddTransceiverFromTrack(l.aux, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		_ = pc.Close()
		return "", fmt.Errorf("media: add agent side track: %w", err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { b.onAgentState(l, s) })
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { b.onTrack(l, t, r) })
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil || b.ev.OnAgentCandidate == nil || b.agent.Load() != l || !b.enter() {
			return
		}
		defer b.wg.Done()
		b.ev.OnAgentCandidate(c.ToJSON())
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		_ = pc.Close()
		return "", fmt.Errorf("media: create agent offer: %w", err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = pc.Close()
		return "", ErrClosed
	}
	old := b.agent.Swap(l)
	b.mu.Unlock()
	if old != nil {
		b.dropFast(old)
		b.out.agentGone()
		_ = old.pc.GracefulClose()
	}
	// Candidates gathered from here on trickle to the agent.
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("media: set agent offer: %w", err)
	}
	return pc.LocalDescription().SDP, nil
}

// SetAgentAnswer applies the browser's answer to the latest OfferAgent.
func (b *Bridge) SetAgentAnswer(answer string) error {
	if err := checkRemoteSDP(answer); err != nil {
		return err
	}
	l := b.agent.Load()
	if l == nil {
		return fmt.Errorf("%w: no agent leg", ErrNoLeg)
	}
	if b.isShut.Load() {
		return ErrClosed
	}
	if err := l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: apply agent answer: %w", ErrBadSDP, err)
	}
	return nil
}

// AddAgentCandidate adds a trickled candidate from the agent browser.
func (b *Bridge) AddAgentCandidate(c webrtc.ICECandidateInit) error {
	l := b.agent.Load()
	if l == nil {
		return fmt.Errorf("%w: no agent leg", ErrNoLeg)
	}
	if b.isShut.Load() {
		return ErrClosed
	}
	if err := l.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCandidate, err)
	}
	return nil
}

// SendDTMF queues RFC 4733 telephone-events toward WhatsApp on our one
// SSRC (100 ms tone, 3 end packets, 40 ms gap per digit). Invalid digits
// are rejected before anything is queued.
func (b *Bridge) SendDTMF(digits string) error {
	if digits == "" {
		return fmt.Errorf("%w: empty", ErrBadDTMF)
	}
	codes := make([]uint8, 0, len(digits))
	for _, d := range digits {
		c, err := dtmfCode(d)
		if err != nil {
			return err
		}
		codes = append(codes, c)
	}
	if b.isShut.Load() {
		return ErrClosed
	}
	if !b.waConnected.Load() {
		return ErrNotConnected
	}
	if !b.waStarted.Load() {
		return ErrMediaNotStarted
	}
	bd := b.out.binding()
	if bd == nil || bd.ptTE == 0 {
		return fmt.Errorf("%w: telephone-event not negotiated", ErrNoTelephoneEvent)
	}
	return b.out.queueDTMF(codes)
}

// StartWhatsAppMedia lets media flow toward WhatsApp: agent audio, DTMF,
// silence when the agent is quiet, RTCP. Call it when `accept` returned 200
// (user-initiated) or at ACCEPTED (business-initiated). Idempotent.
func (b *Bridge) StartWhatsAppMedia() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.wa == nil {
		return fmt.Errorf("%w: no whatsapp leg", ErrNoLeg)
	}
	if !b.waStarted.Swap(true) {
		b.log.Debug("whatsapp media started")
	}
	return nil
}

// ArmWatchdog starts the no-media watchdog (see Events.OnMediaTimeout):
// call it when `accept` returned 200 (user-initiated) or at ACCEPTED
// (business-initiated). Before, no silence from WhatsApp ends anything.
// Idempotent: the first call is the start.
func (b *Bridge) ArmWatchdog() error {
	if b.isShut.Load() {
		return ErrClosed
	}
	b.armedAt.CompareAndSwap(0, time.Now().UnixNano())
	return nil
}

// Stats returns a snapshot of both legs' statistics.
func (b *Bridge) Stats() Stats {
	var s Stats
	b.waRx.snapshot(&s.WhatsApp)
	b.agRx.snapshot(&s.Agent)
	s.WhatsApp.PacketsSent, s.WhatsApp.BytesSent = b.out.sent()
	s.Agent.PacketsSent, s.Agent.BytesSent = b.agTxPkts.Load(), b.agTxBytes.Load()
	s.WhatsApp.RTT = time.Duration(b.waRTT.Load())
	s.Agent.RTT = time.Duration(b.agRTT.Load())
	return s
}

// Close closes both legs and waits for every goroutine of the bridge. It is
// idempotent.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.isShut.Store(true)
	b.StopPlayback()
	wa := b.wa
	ag := b.agent.Load()
	b.mu.Unlock()
	if err := b.StopRecording(); err != nil {
		b.log.Warn("recording stopped at close", "err", err)
	}
	b.e.remove(b)
	for _, l := range []*leg{ag, wa} {
		if l != nil {
			b.dropFast(l)
		}
	}
	errs := []error{b.closeSides()}
	if ag != nil {
		errs = append(errs, ag.pc.GracefulClose())
	}
	if wa != nil {
		errs = append(errs, wa.pc.GracefulClose())
	}
	b.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("media: close bridge: %w", err)
	}
	return nil
}

func (b *Bridge) onWAState(s webrtc.PeerConnectionState) {
	if !b.enter() {
		return
	}
	defer b.wg.Done()
	st := legStateFrom(s)
	if w := b.waLeg(); w != nil {
		w.state.Store(uint32(st))
		b.fastSwitch(w, st)
		w.connected.Store(st == LegConnected)
	}
	b.e.metrics.LegStates.WithLabelValues(legWhatsApp.String(), st.String()).Inc()
	if st == LegConnected {
		b.waConnected.Store(true)
	} else if st == LegFailed || st == LegClosed {
		b.waConnected.Store(false)
	}
	if b.ev.OnWhatsAppState != nil {
		b.ev.OnWhatsAppState(st)
	}
}

func (b *Bridge) onAgentState(l *leg, s webrtc.PeerConnectionState) {
	if !b.enter() {
		return
	}
	defer b.wg.Done()
	st := legStateFrom(s)
	l.state.Store(uint32(st))
	if b.agent.Load() == l {
		b.fastSwitch(l, st)
	}
	l.connected.Store(st == LegConnected)
	if b.agent.Load() != l {
		return // a replaced leg
	}
	b.e.metrics.LegStates.WithLabelValues(legAgent.String(), st.String()).Inc()
	if b.ev.OnAgentState != nil {
		b.ev.OnAgentState(st)
	}
}

// handleRTCP handles one RTCP packet written to the rtcpSink of stream
// ssrc on leg l: an SR sent by that SSRC (the stream we receive), or report
// blocks about that SSRC when it is our sender's (RTT). Each packet reaches
// the sink of every SSRC it concerns, so nothing is counted twice.
func (b *Bridge) handleRTCP(l *leg, ssrc uint32, raw []byte) {
	if l.kind == legAgent && b.agent.Load() != l {
		return // a replaced agent leg
	}
	pkts, err := rtcp.Unmarshal(raw)
	if err != nil {
		return
	}
	now := time.Now()
	rx, rtt := &b.waRx, &b.waRTT
	if l.kind == legAgent {
		rx, rtt = &b.agRx, &b.agRTT
	}
	var ours uint32
	if bd := l.track.b.Load(); bd != nil {
		ours = bd.ssrc
	}
	blocks := func(rr []rtcp.ReceptionReport) {
		if ours == 0 || ssrc != ours {
			return
		}
		for _, r := range rr {
			if r.SSRC != ours {
				continue
			}
			if d, ok := rttFrom(now, r); ok {
				rtt.Store(int64(d))
				l.rttFresh.Store(true)
			}
		}
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			if p.SSRC == ssrc {
				rx.gotSR(now, p.SSRC, p.NTPTime)
			}
			blocks(p.Reports)
		case *rtcp.ReceiverReport:
			blocks(p.Reports)
		}
	}
}

// onTrack runs a leg's RTP read loop (in Pion's OnTrack goroutine), ending
// when the leg closes. RTCP needs no reader: see rtcpSink.
func (b *Bridge) onTrack(l *leg, t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	if !b.enter() {
		return
	}
	defer b.wg.Done()
	opusIn, teIn := receivePayloadTypes(r.GetParameters().Codecs)
	fw := forwarder{b: b, l: l, wa: l.kind == legWhatsApp, track: t, opusIn: opusIn, teIn: teIn,
		buf: make([]byte, b.e.cfg.ReceiveMTU)}
	for {
		n, _, err := t.Read(fw.buf)
		if err != nil {
			return
		}
		fw.handle(time.Now(), fw.buf[:n])
	}
}

func (b *Bridge) waLeg() *leg { return b.waPtr.Load() }

// fastSwitch moves a leg that just connected onto the fast path (PathFast),
// before anything may be sent on it, and takes a failed or closed one off.
// A leg that cannot move stays on Pion's path, which still works.
func (b *Bridge) fastSwitch(l *leg, st LegState) {
	if b.e.fast == nil {
		return
	}
	switch {
	case st == LegConnected && l.fast.Load() == nil:
		if err := b.goFast(l); err != nil {
			b.log.Warn("leg stays on pion's packet path", "leg", l.kind.String(), "err", err)
		}
	case st == LegFailed || st == LegClosed:
		b.dropFast(l)
	}
}

// snapshotLegs keeps a stats snapshot of each leg that has not connected
// within two seconds (pacer, once a second), for Diagnose. Legs that
// connect in time cost nothing.
func (b *Bridge) snapshotLegs(now time.Time) {
	for _, l := range []*leg{b.waLeg(), b.agent.Load()} {
		if l == nil || l.pc == nil || now.Sub(l.born) <= 2*time.Second {
			continue
		}
		if st := LegState(l.state.Load()); st == LegUnknown || st == LegNew || st == LegConnecting {
			r := l.pc.GetStats()
			l.snap.Store(&r)
		}
	}
}

// Diagnose says why a leg carries no media, in one of mediadiag's bounded
// causes (no_remote_candidates, nothing_from_peer, checks_unanswered,
// ice_failed, dtls_failed, no_media_from_peer, media_stopped, unknown),
// counts it in callgw_media_failures_total{leg,cause} and logs the details
// (no addresses). "" when the leg does not exist.
func (b *Bridge) Diagnose(agentLeg bool) string {
	name, l := "whatsapp", b.waLeg()
	st := b.Stats()
	rx := st.WhatsApp.PacketsReceived
	if agentLeg {
		name, l, rx = "agent", b.agent.Load(), st.Agent.PacketsReceived
	}
	if l == nil || l.pc == nil {
		return ""
	}
	var r webrtc.StatsReport
	// Pion's GetStats races Pion's own close (it reads the statsGetter
	// that close clears, unlocked), and Pion closes a connected leg by
	// itself when the remote's DTLS close_notify arrives, before our state
	// says so. Read stats only when they decide the cause: a leg that
	// received RTP is media_stopped whatever they say (its snapshot, if
	// any, still details the log).
	if LegState(l.state.Load()) == LegConnected && rx == 0 {
		r = l.pc.GetStats()
	}
	if !hasPairs(r) {
		if s := l.snap.Load(); s != nil {
			r = *s
		}
	}
	d := mediadiag.Diagnose(r, rx)
	b.e.diag.Observe(name, d)
	b.log.Warn("media diagnosis", "leg", name, "diagnosis", d.String())
	return d.Cause.String()
}

func hasPairs(r webrtc.StatsReport) bool {
	for _, s := range r {
		if _, ok := s.(webrtc.ICECandidatePairStats); ok {
			return true
		}
	}
	return false
}
