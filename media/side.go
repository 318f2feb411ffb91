package media

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Side legs: extra PeerConnections on a bridge, beside the agent leg, for a
// supervisor (listen, whisper, take over) or a transfer target (consult).
//
// A side leg carries two tracks from us, named as the agent leg's are (so a
// promoted side leg is an agent leg to the browser): "audio" (what the
// WhatsApp user says) and "side" (what the agent says), in one stream; the
// browser plays or mixes both.
// The agent leg carries, besides the caller, an "aux" track on which it hears
// the one side allowed to talk to it (whisper, take over, consult). What the
// side sends goes, by mode:
//
//	SideListen   nowhere
//	SideWhisper  to the agent (aux track) only, never toward WhatsApp
//	SideTakeOver toward WhatsApp instead of the agent's audio, and to the agent
//	SideConsult  to the agent (aux track); the side hears the agent only
//
// At most one side may talk (whisper, take over or consult) at a time;
// listeners are not limited. Forwarding allocates nothing per packet; toward
// WhatsApp everything goes through outState (one SSRC, continuous sequence
// numbers and timestamps). PromoteSide makes a side leg the agent leg.

// SideMode says what a side leg hears and where its audio goes.
type SideMode uint8

// Side modes; the zero value is invalid.
const (
	SideListen SideMode = iota + 1
	SideWhisper
	SideTakeOver
	SideConsult
)

// String returns the mode's protocol name.
func (m SideMode) String() string {
	switch m {
	case SideListen:
		return "listen"
	case SideWhisper:
		return "whisper"
	case SideTakeOver:
		return "takeover"
	case SideConsult:
		return "consult"
	default:
		return "unknown"
	}
}

// ParseSideMode parses a mode name as String returns it.
func ParseSideMode(s string) (SideMode, error) {
	for m := SideListen; m <= SideConsult; m++ {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrBadSideMode, s)
}

func (m SideMode) valid() bool { return m >= SideListen && m <= SideConsult }

// talks: the side's audio goes somewhere.
func (m SideMode) talks() bool { return m != SideListen }

// hearsCaller: the side receives the WhatsApp user's audio.
func (m SideMode) hearsCaller() bool { return m != SideConsult }

// relay rewrites one destination track's packets into a continuous sequence
// number and timestamp space across source changes (the first source keeps
// its numbers). It holds its own header scratch; no allocation per packet.
type relay struct {
	mu      sync.Mutex
	hdr     rtp.Header
	have    bool // offsets valid for src
	src     uint32
	seqOff  uint16
	tsOff   uint32
	seq     uint16
	ts      uint32
	pkts    uint64
	written bool
}

// write sends payload (from source SSRC src, header in) on track t.
func (r *relay) write(t *outTrack, src uint32, in *rtp.Header, payload []byte, audio, te bool) bool {
	if t == nil {
		return false
	}
	bd := t.b.Load()
	if bd == nil {
		return false
	}
	pt, ok := bd.payloadType(audio, te)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.have || src != r.src {
		if r.written {
			r.seqOff = r.seq + 1 - in.SequenceNumber
			r.tsOff = r.ts + opusFrameTicks - in.Timestamp
		} else {
			r.seqOff, r.tsOff = 0, 0
		}
		r.have, r.src = true, src
	}
	seq, ts := in.SequenceNumber+r.seqOff, in.Timestamp+r.tsOff
	if !r.written || int16(seq-r.seq) > 0 {
		r.seq, r.ts = seq, ts
	}
	r.written = true
	r.hdr.Version = 2
	r.hdr.PayloadType = pt
	r.hdr.Marker = in.Marker
	r.hdr.SequenceNumber = seq
	r.hdr.Timestamp = ts
	r.hdr.SSRC = bd.ssrc
	if _, err := bd.w.WriteRTP(&r.hdr, payload); err != nil {
		return false
	}
	r.pkts++
	return true
}

func (r *relay) count() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pkts
}

// sideLeg is one side PeerConnection (leg.track = "audio": the caller; leg.aux = "side": the agent).
type sideLeg struct {
	id     string
	l      *leg
	mode   atomic.Uint32 // SideMode
	caller relay         // WhatsApp → side (WhatsApp read loop)
	agent  relay         // agent → side (agent read loop)
}

func (s *sideLeg) Mode() SideMode { return SideMode(s.mode.Load()) }

// sideSet is a bridge's side legs. The list is copy on write, read without
// a lock on the packet path.
type sideSet struct {
	mu     sync.Mutex // guards changes; Bridge.mu is never taken inside it
	list   atomic.Pointer[[]*sideLeg]
	talker atomic.Pointer[sideLeg] // the one side that talks, if any
	toAux  relay                   // talking side → agent's aux track
}

func (ss *sideSet) all() []*sideLeg {
	if p := ss.list.Load(); p != nil {
		return *p
	}
	return nil
}

func (ss *sideSet) find(id string) *sideLeg {
	for _, s := range ss.all() {
		if s.id == id {
			return s
		}
	}
	return nil
}

// setLocked replaces the list (ss.mu held).
func (ss *sideSet) setLocked(l []*sideLeg) {
	if len(l) == 0 {
		ss.list.Store(nil)
		return
	}
	ss.list.Store(&l)
}

// removeLocked takes s off the list (and off talker); ss.mu held.
func (ss *sideSet) removeLocked(s *sideLeg) bool {
	cur := ss.all()
	i := slices.Index(cur, s)
	if i < 0 {
		return false
	}
	ss.setLocked(slices.Delete(slices.Clone(cur), i, i+1))
	ss.talker.CompareAndSwap(s, nil)
	return true
}

// takeOver reports whether a side currently replaces the agent toward WhatsApp.
func (ss *sideSet) takeOver() bool {
	t := ss.talker.Load()
	return t != nil && t.Mode() == SideTakeOver
}

// OfferSide creates side leg id in mode m and returns our offer (two tracks:
// "audio" (the caller) and "side" (the agent)); our candidates trickle via Events.OnSideCandidate.
// ErrSideExists if id is taken, ErrSideBusy if m talks while another side
// talks. The agent leg and the WhatsApp leg are untouched.
func (b *Bridge) OfferSide(ctx context.Context, id string, m SideMode) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !m.valid() {
		return "", fmt.Errorf("%w: %d", ErrBadSideMode, m)
	}
	if id == "" {
		return "", fmt.Errorf("%w: empty id", ErrNoSide)
	}
	if b.isShut.Load() {
		return "", ErrClosed
	}
	s := &sideLeg{id: id}
	s.mode.Store(uint32(m))
	l := &leg{kind: legAgent, side: s, born: time.Now(),
		track: newOutTrack("audio", "callgw-"+b.id),
		aux:   newOutTrack("side", "callgw-"+b.id)}
	s.l = l
	// Reserve the id (and the talker slot) before building anything.
	b.side.mu.Lock()
	if b.side.find(id) != nil {
		b.side.mu.Unlock()
		return "", fmt.Errorf("%w: %q", ErrSideExists, id)
	}
	if m.talks() && !b.side.talker.CompareAndSwap(nil, s) {
		b.side.mu.Unlock()
		return "", fmt.Errorf("%w: another side talks", ErrSideBusy)
	}
	b.side.setLocked(append(slices.Clone(b.side.all()), s))
	b.side.mu.Unlock()

	sdp, err := b.buildSide(ctx, s)
	if err != nil {
		b.side.mu.Lock()
		b.side.removeLocked(s)
		b.side.mu.Unlock()
		if l.pc != nil {
			_ = l.pc.Close()
		}
		return "", err
	}
	b.log.Info("side leg offered", "side", id, "mode", m.String())
	return sdp, nil
}

func (b *Bridge) buildSide(ctx context.Context, s *sideLeg) (string, error) {
	l := s.l
	pc, err := b.newPC(b.e.agAPI, l, b.e.cfg.AgentICEServers)
	if err != nil {
		return "", err
	}
	l.pc = pc
	if l.sender, err = pc.AddTrack(l.track); err != nil {
		return "", fmt.Errorf("media: add side caller track: %w", err)
	}
	if _, err = pc.AddTransceiverFromTrack(l.aux, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		return "", fmt.Errorf("media: add side agent track: %w", err)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) { b.onSideState(s, st) })
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { b.onTrack(l, t, r) })
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil || b.ev.OnSideCandidate == nil || !b.enter() {
			return
		}
		defer b.wg.Done()
		if b.side.find(s.id) != s && b.agent.Load() != l {
			return
		}
		b.ev.OnSideCandidate(s.id, c.ToJSON())
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("media: create side offer: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if b.isShut.Load() {
		return "", ErrClosed
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("media: set side offer: %w", err)
	}
	return pc.LocalDescription().SDP, nil
}

// side returns side leg id or ErrNoSide / ErrClosed.
func (b *Bridge) sideByID(id string) (*sideLeg, error) {
	if b.isShut.Load() {
		return nil, ErrClosed
	}
	s := b.side.find(id)
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSide, id)
	}
	return s, nil
}

// SetSideAnswer applies the side browser's answer to OfferSide's offer.
func (b *Bridge) SetSideAnswer(id, sdp string) error {
	if err := checkRemoteSDP(sdp); err != nil {
		return err
	}
	s, err := b.sideByID(id)
	if err != nil {
		return err
	}
	if err := s.l.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: apply side answer: %w", ErrBadSDP, err)
	}
	return nil
}

// AddSideCandidate adds a trickled candidate from the side browser.
func (b *Bridge) AddSideCandidate(id string, c webrtc.ICECandidateInit) error {
	s, err := b.sideByID(id)
	if err != nil {
		return err
	}
	if err := s.l.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCandidate, err)
	}
	return nil
}

// SetSideMode switches side leg id to mode m at once (no renegotiation).
// ErrSideBusy if m talks while another side talks.
func (b *Bridge) SetSideMode(id string, m SideMode) error {
	if !m.valid() {
		return fmt.Errorf("%w: %d", ErrBadSideMode, m)
	}
	b.side.mu.Lock()
	defer b.side.mu.Unlock()
	s, err := b.sideByID(id)
	if err != nil {
		return err
	}
	if m.talks() {
		if t := b.side.talker.Load(); t != nil && t != s {
			return fmt.Errorf("%w: another side talks", ErrSideBusy)
		}
		b.side.talker.Store(s)
	} else {
		b.side.talker.CompareAndSwap(s, nil)
	}
	if old := s.Mode(); old == SideTakeOver && m != SideTakeOver {
		b.out.agentGone() // re-anchor on the agent's stream
	}
	s.mode.Store(uint32(m))
	b.log.Info("side leg mode", "side", id, "mode", m.String())
	return nil
}

// SideMode returns side leg id's mode (false if there is none).
func (b *Bridge) SideMode(id string) (SideMode, bool) {
	s := b.side.find(id)
	if s == nil {
		return 0, false
	}
	return s.Mode(), true
}

// PromoteSide makes side leg id the agent leg (warm transfer complete, take
// over): the WhatsApp user hears it and it hears the user on its "audio"
// track; the previous agent leg is closed. The side must be connected.
// RTP toward WhatsApp stays continuous.
func (b *Bridge) PromoteSide(id string) error {
	b.side.mu.Lock()
	s, err := b.sideByID(id)
	if err != nil {
		b.side.mu.Unlock()
		return err
	}
	if !s.l.connected.Load() {
		b.side.mu.Unlock()
		return fmt.Errorf("%w: side %q", ErrSideNotConnected, id)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.side.mu.Unlock()
		return ErrClosed
	}
	old := b.agent.Swap(s.l)
	b.mu.Unlock()
	b.side.removeLocked(s)
	b.side.mu.Unlock()
	b.out.agentGone()
	if old != nil {
		b.dropFast(old)
		_ = old.pc.GracefulClose()
	}
	b.log.Info("side leg promoted to agent leg", "side", id)
	if b.ev.OnAgentState != nil && b.enter() {
		defer b.wg.Done()
		b.ev.OnAgentState(LegConnected)
	}
	return nil
}

// CloseSide closes side leg id (monitor stop, consult cancelled).
func (b *Bridge) CloseSide(id string) error {
	b.side.mu.Lock()
	s, err := b.sideByID(id)
	if err == nil {
		if s.Mode() == SideTakeOver {
			b.out.agentGone()
		}
		b.side.removeLocked(s)
	}
	b.side.mu.Unlock()
	if err != nil {
		return err
	}
	b.dropFast(s.l)
	if err := s.l.pc.GracefulClose(); err != nil {
		return fmt.Errorf("media: close side: %w", err)
	}
	return nil
}

// Sides returns the ids of the bridge's side legs with their modes.
func (b *Bridge) Sides() map[string]SideMode {
	out := map[string]SideMode{}
	for _, s := range b.side.all() {
		out[s.id] = s.Mode()
	}
	return out
}

// SideStats are a side leg's forwarding counters.
type SideStats struct {
	CallerSent, AgentSent uint64 // packets sent to the side on each track
	State                 LegState
}

// SideStats returns side leg id's counters.
func (b *Bridge) SideStats(id string) (SideStats, bool) {
	s := b.side.find(id)
	if s == nil {
		return SideStats{}, false
	}
	return SideStats{CallerSent: s.caller.count(), AgentSent: s.agent.count(),
		State: LegState(s.l.state.Load())}, true
}

// closeSides closes every side leg (Bridge.Close).
func (b *Bridge) closeSides() error {
	b.side.mu.Lock()
	list := b.side.all()
	b.side.setLocked(nil)
	b.side.talker.Store(nil)
	b.side.mu.Unlock()
	var errs []error
	for _, s := range list {
		b.dropFast(s.l)
		if s.l.pc != nil {
			errs = append(errs, s.l.pc.GracefulClose())
		}
	}
	return errors.Join(errs...)
}

func (b *Bridge) onSideState(s *sideLeg, ps webrtc.PeerConnectionState) {
	if b.agent.Load() == s.l { // promoted
		b.onAgentState(s.l, ps)
		return
	}
	if !b.enter() {
		return
	}
	defer b.wg.Done()
	st := legStateFrom(ps)
	s.l.state.Store(uint32(st))
	b.fastSwitch(s.l, st)
	s.l.connected.Store(st == LegConnected)
	if b.side.find(s.id) != s {
		return // closed
	}
	if b.ev.OnSideState != nil {
		b.ev.OnSideState(s.id, st)
	}
}

// --- packet path (no allocation) ---

// callerToSides forwards a WhatsApp packet (source SSRC src) to every
// side that hears the caller.
func (b *Bridge) callerToSides(src uint32, h *rtp.Header, payload []byte, audio, te bool) {
	for _, s := range b.side.all() {
		if s.Mode().hearsCaller() && s.l.connected.Load() {
			s.caller.write(s.l.track, src, h, payload, audio, te)
		}
	}
}

// agentToSides forwards an agent packet to every side's "side" track.
func (b *Bridge) agentToSides(h *rtp.Header, payload []byte, audio, te bool) {
	for _, s := range b.side.all() {
		if s.l.connected.Load() {
			s.agent.write(s.l.aux, h.SSRC, h, payload, audio, te)
		}
	}
}

// fromSide handles a packet read on side leg l by its mode.
func (b *Bridge) fromSide(now time.Time, l *leg, h *rtp.Header, payload []byte, audio, te bool) {
	s := l.side
	if s == nil || b.side.talker.Load() != s {
		return // listeners (and closed sides) talk to nobody
	}
	if ag := b.agent.Load(); ag != nil && ag.connected.Load() {
		b.side.toAux.write(ag.aux, h.SSRC, h, payload, audio, te)
	}
	if s.Mode() == SideTakeOver && b.waConnected.Load() && b.waStarted.Load() && b.out.fromAgent(now, h, payload, audio, te) {
		m := b.e.metrics
		m.fwdToWA.Inc()
		m.bytesToWA.Add(float64(len(payload)))
	}
}

// CloseAgent closes the agent leg only (the agent left; the caller stays,
// e.g. on hold during a blind transfer). A later OfferAgent builds a new
// one. No-op without an agent leg.
func (b *Bridge) CloseAgent() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	old := b.agent.Swap(nil)
	b.mu.Unlock()
	if old == nil {
		return nil
	}
	b.out.agentGone()
	b.dropFast(old)
	if err := old.pc.GracefulClose(); err != nil {
		return fmt.Errorf("media: close agent leg: %w", err)
	}
	return nil
}
