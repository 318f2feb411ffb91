package media

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	// agentGap: with no agent packet for this long, the pacer fills with silence.
	agentGap = 50 * time.Millisecond
	// DTMF toward WhatsApp: 5 tone frames (100 ms), 3 end packets, 2 gap frames.
	dtmfToneFrames = 5
	dtmfEndPackets = 3
	dtmfGapFrames  = 2
	dtmfVolume     = 10
	dtmfQueueLen   = 32
)

// outState is everything sent toward WhatsApp: one SSRC, one sequence
// number and timestamp space shared by agent audio (rewritten with
// offsets), silence and DTMF. The agent read loop and the pacer both write,
// under mu.
type outState struct {
	// What the pacer's tick reads first (one cache line): nothing else is
	// touched when agent audio flows and nothing is queued.
	mu          sync.Mutex
	track       *outTrack
	lastAgentNS int64
	dqLen       int
	dtmfGap     int
	dtmfActive  bool
	play        *playback // play.go: the prompt playback in progress

	hdr rtp.Header

	seq uint16
	ts  uint32

	haveSrc bool // offsets valid for srcSSRC
	srcSSRC uint32
	seqOff  uint16
	tsOff   uint32

	pkts, bytes uint64
	lastSendAt  time.Time

	silence [3]byte
	te      [4]byte

	dq       [dtmfQueueLen]uint8
	dqHead   int
	dtmfCode uint8
	dtmfStep int
	dtmfTS   uint32

	// held: the call is on hold (no agent audio toward WhatsApp, nothing
	// toward the agent).
	held atomic.Bool
	// rec is the recording tap (record.go); nil: off. The business
	// direction is tapped in writeLocked, the user direction in the
	// WhatsApp leg's forwarder.
	rec   atomic.Pointer[recorder]
	recMu sync.Mutex // serialises StartRecording and StopRecording
}

func (o *outState) initTrack() *outTrack {
	o.mu.Lock()
	o.track = newOutTrack("audio", "callgw")
	t := o.track
	o.mu.Unlock()
	return t
}

func (o *outState) binding() *binding {
	o.mu.Lock()
	t := o.track
	o.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.b.Load()
}

// writeLocked sends one packet on our SSRC with the current header fields.
func (o *outState) writeLocked(now time.Time, bd *binding, pt uint8, marker bool, seq uint16, ts uint32, payload []byte) bool {
	o.hdr.Version = 2
	o.hdr.PayloadType = pt
	o.hdr.Marker = marker
	o.hdr.SequenceNumber = seq
	o.hdr.Timestamp = ts
	o.hdr.SSRC = bd.ssrc
	if _, err := bd.w.WriteRTP(&o.hdr, payload); err != nil {
		return false
	}
	if r := o.rec.Load(); r != nil && pt == bd.ptOpus {
		r.biz.push(payload, ts)
	}
	o.pkts++
	o.bytes += uint64(len(payload))
	o.lastSendAt = now
	return true
}

// fromAgent forwards one agent packet toward WhatsApp, rewriting sequence
// number and timestamp into our continuous space.
func (o *outState) fromAgent(now time.Time, in *rtp.Header, payload []byte, audio, te bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.track == nil || o.dtmfActive || o.play != nil || o.held.Load() {
		return false
	}
	bd := o.track.b.Load()
	if bd == nil {
		return false
	}
	pt, ok := bd.payloadType(audio, te)
	if !ok {
		return false
	}
	if !o.haveSrc || in.SSRC != o.srcSSRC {
		o.haveSrc, o.srcSSRC = true, in.SSRC
		o.seqOff = o.seq + 1 - in.SequenceNumber
		o.tsOff = o.ts + opusFrameTicks - in.Timestamp
	}
	seq := in.SequenceNumber + o.seqOff
	ts := in.Timestamp + o.tsOff
	if int16(seq-o.seq) > 0 {
		o.seq, o.ts = seq, ts
	}
	if !o.writeLocked(now, bd, pt, in.Marker, seq, ts, payload) {
		return false
	}
	o.lastAgentNS = now.UnixNano()
	return true
}

// agentGone makes the pacer resume silence at once (agent leg replaced).
func (o *outState) agentGone() {
	o.mu.Lock()
	o.lastAgentNS = 0
	o.haveSrc = false
	o.mu.Unlock()
}

// tick is the pacer's 20 ms step: the next DTMF packet, the prompt packets
// due (play.go), or a silence frame when no agent audio flows.
//
// Before the call's media is started (started false) only silence is sent.
func (o *outState) tick(now time.Time, m *Metrics, started bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.track == nil {
		return
	}
	if o.dtmfGap == 0 && !(started && (o.dtmfActive || o.dqLen > 0 || o.play != nil)) &&
		now.UnixNano()-o.lastAgentNS < int64(agentGap) {
		return // agent audio flows, nothing due: what follows would return too
	}
	bd := o.track.b.Load()
	if bd == nil {
		return
	}
	if started && (o.dtmfActive || (o.dqLen > 0 && o.dtmfGap == 0)) {
		if o.play != nil {
			o.play.due = 0 // paused; resumes at the tick after the event
		}
		o.dtmfStepLocked(now, bd, m)
		return
	}
	if o.dtmfGap > 0 {
		o.dtmfGap--
	}
	if started && o.play != nil {
		o.playLocked(now, bd, m)
		return
	}
	if now.UnixNano()-o.lastAgentNS < int64(agentGap) {
		return
	}
	o.haveSrc = false
	o.seq++
	o.ts += opusFrameTicks
	if o.writeLocked(now, bd, bd.ptOpus, false, o.seq, o.ts, o.silence[:]) {
		m.SilencePackets.Inc()
	}
}

func (o *outState) queueDTMF(codes []uint8) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dqLen+len(codes) > len(o.dq) {
		return ErrDTMFBusy
	}
	for _, c := range codes {
		o.dq[(o.dqHead+o.dqLen)%len(o.dq)] = c
		o.dqLen++
	}
	return nil
}

func (o *outState) dtmfStepLocked(now time.Time, bd *binding, m *Metrics) {
	if !o.dtmfActive {
		o.dtmfCode = o.dq[o.dqHead]
		o.dqHead = (o.dqHead + 1) % len(o.dq)
		o.dqLen--
		o.dtmfActive, o.dtmfStep = true, 0
		o.dtmfTS = o.ts + opusFrameTicks
	}
	o.dtmfStep++
	unit := uint16(bd.teRate / 50)
	if unit == 0 {
		unit = 160
	}
	ev := telephoneEvent{Event: o.dtmfCode, Volume: dtmfVolume}
	if o.dtmfStep <= dtmfToneFrames {
		ev.Duration = uint16(o.dtmfStep) * unit
	} else {
		ev.End, ev.Duration = true, dtmfToneFrames*unit
	}
	ev.put(o.te[:])
	o.seq++
	o.writeLocked(now, bd, bd.ptTE, o.dtmfStep == 1, o.seq, o.dtmfTS, o.te[:])
	if o.dtmfStep == dtmfToneFrames+dtmfEndPackets {
		o.dtmfActive = false
		o.ts = o.dtmfTS + (dtmfToneFrames+dtmfEndPackets-1)*opusFrameTicks
		o.haveSrc = false
		o.dtmfGap = dtmfGapFrames
		m.dtmfToWA.Inc()
	}
}

func (o *outState) sent() (pkts, bytes uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pkts, o.bytes
}

// srInfo returns the sender report figures: counts and the RTP time
// corresponding to now.
func (o *outState) srInfo(now time.Time) (pkts, bytes uint64, rtpTime uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rtpTime = o.ts
	if !o.lastSendAt.IsZero() {
		rtpTime += uint32(now.Sub(o.lastSendAt).Microseconds() * 48 / 1000)
	}
	return o.pkts, o.bytes, rtpTime
}

// forwarder is one leg's RTP read loop state; it allocates nothing per packet.
type forwarder struct {
	b      *Bridge
	l      *leg
	wa     bool // l is the WhatsApp leg (l.kind, without loading l per packet)
	track  *webrtc.TrackRemote
	opusIn uint8
	teIn   uint8
	hdr    rtp.Header
	buf    []byte

	lastEndTS uint32
	haveEnd   bool
}

// handle processes one received RTP packet.
func (f *forwarder) handle(now time.Time, pkt []byte) {
	hl, err := f.hdr.Unmarshal(pkt)
	if err != nil {
		return
	}
	f.handleParsed(now, pkt[hl:])
}

// handleParsed is handle once f.hdr holds the packet's header; payload is
// what follows the header (padding included).
func (f *forwarder) handleParsed(now time.Time, payload []byte) {
	if f.hdr.Padding {
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
		f.hdr.Padding = false
	}
	f.hdr.PaddingSize = 0
	audio := f.hdr.PayloadType == f.opusIn
	te := !audio && f.teIn != 0 && f.hdr.PayloadType == f.teIn
	b, m := f.b, f.b.e.metrics
	if f.wa {
		b.lastWARx.Store(now.UnixNano())
		if lost := b.waRx.update(now, b.e.arrivalUS(now), f.hdr.SSRC, f.hdr.SequenceNumber, f.hdr.Timestamp, len(payload), audio); lost > 0 {
			m.lostWA.Add(float64(lost))
		}
		if te {
			f.dtmfIn(payload)
		} else if r := b.out.rec.Load(); r != nil && audio {
			r.user.push(payload, f.hdr.Timestamp)
		}
		src := f.hdr.SSRC
		if b.toAgent(now, &f.hdr, payload, audio, te) {
			m.fwdToAgent.Inc()
			m.bytesToAgent.Add(float64(len(payload)))
		} else {
			m.dropToAgent.Inc()
		}
		b.callerToSides(src, &f.hdr, payload, audio, te)
		return
	}
	if b.agent.Load() != f.l {
		b.fromSide(now, f.l, &f.hdr, payload, audio, te)
		return
	}
	if lost := b.agRx.update(now, b.e.arrivalUS(now), f.hdr.SSRC, f.hdr.SequenceNumber, f.hdr.Timestamp, len(payload), audio); lost > 0 {
		m.lostAgent.Add(float64(lost))
	}
	if b.waConnected.Load() && b.waStarted.Load() && !b.side.takeOver() && b.out.fromAgent(now, &f.hdr, payload, audio, te) {
		m.fwdToWA.Inc()
		m.bytesToWA.Add(float64(len(payload)))
	} else {
		m.dropToWA.Inc()
	}
	b.agentToSides(&f.hdr, payload, audio, te)
}

// dtmfIn reports a digit once, on the first end packet of an event.
func (f *forwarder) dtmfIn(payload []byte) {
	ev, ok := parseTelephoneEvent(payload)
	if !ok || !ev.End {
		return
	}
	if f.haveEnd && f.hdr.Timestamp == f.lastEndTS {
		return // retransmitted end packet
	}
	f.haveEnd, f.lastEndTS = true, f.hdr.Timestamp
	d, ok := dtmfDigit(ev.Event)
	if !ok {
		return
	}
	f.b.e.metrics.dtmfFromWA.Inc()
	if f.b.ev.OnDTMF != nil {
		f.b.ev.OnDTMF(d)
	}
}

// toAgent forwards a WhatsApp packet to the current agent leg, if any.
func (b *Bridge) toAgent(now time.Time, h *rtp.Header, payload []byte, audio, te bool) bool {
	ag := b.agent.Load()
	if ag == nil || !ag.connected.Load() || b.out.held.Load() {
		return false
	}
	bd := ag.track.b.Load()
	if bd == nil {
		return false
	}
	pt, ok := bd.payloadType(audio, te)
	if !ok {
		return false
	}
	h.SSRC, h.PayloadType = bd.ssrc, pt
	h.Extension, h.Extensions = false, h.Extensions[:0]
	if _, err := bd.w.WriteRTP(h, payload); err != nil {
		return false
	}
	b.agTxPkts.Add(1)
	b.agTxBytes.Add(uint64(len(payload)))
	b.agLastTS.Store(h.Timestamp)
	b.agLastSendNS.Store(now.UnixNano())
	return true
}

// tick is called by the engine pacer every 20 ms.
func (b *Bridge) tick(now time.Time) {
	if b.isShut.Load() {
		return
	}
	if b.armedAt.Load() != 0 {
		b.watchdog(now)
	}
	if b.waConnected.Load() && b.waMayCarry() {
		b.out.tick(now, b.e.metrics, b.waStarted.Load())
	}
	if !now.Before(b.rtcpNext) {
		b.rtcpNext = now.Add(rtcpInterval)
		b.sendReports(now)
	}
	if !now.Before(b.snapNext) {
		b.snapNext = now.Add(time.Second)
		b.snapshotLegs(now)
	}
}

// waMayCarry: anything (at least silence and RTCP) may be sent toward
// WhatsApp.
func (b *Bridge) waMayCarry() bool { return b.waStarted.Load() || b.waSilenceOK.Load() }

// watchdog (armed only): no RTP since arming for MediaStartTimeout, or none
// for MediaTimeout once some arrived, fires OnMediaTimeout once.
func (b *Bridge) watchdog(now time.Time) {
	if b.timeoutFired.Load() {
		return
	}
	since, limit := b.armedAt.Load(), b.e.cfg.MediaStartTimeout
	if last := b.lastWARx.Load(); last != 0 {
		since, limit = max(since, last), b.e.cfg.MediaTimeout
	}
	if now.UnixNano()-since < int64(limit) || !b.timeoutFired.CompareAndSwap(false, true) {
		return
	}
	b.e.metrics.MediaTimeouts.Inc()
	b.log.Warn("whatsapp leg media timeout", "timeout", limit)
	if b.ev.OnMediaTimeout != nil && b.enter() {
		defer b.wg.Done()
		b.ev.OnMediaTimeout()
	}
}

// sendReports sends one SR (or RR) per connected leg, with a reception
// report for the stream we receive on it.
func (b *Bridge) sendReports(now time.Time) {
	if wa := b.waLeg(); wa != nil && b.waConnected.Load() && b.waMayCarry() {
		if bd := wa.track.b.Load(); bd != nil {
			pkts, bytes, rtpTime := b.out.srInfo(now)
			b.writeReport(now, wa, bd.ssrc, &b.waRx, pkts, bytes, rtpTime)
		}
	}
	if ag := b.agent.Load(); ag != nil && ag.connected.Load() {
		if bd := ag.track.b.Load(); bd != nil {
			rtpTime := b.agLastTS.Load()
			if ns := b.agLastSendNS.Load(); ns != 0 {
				rtpTime += uint32((now.UnixNano() - ns) / 1000 * 48 / 1000)
			}
			b.writeReport(now, ag, bd.ssrc, &b.agRx, b.agTxPkts.Load(), b.agTxBytes.Load(), rtpTime)
		}
	}
}

func (b *Bridge) writeReport(now time.Time, l *leg, ssrc uint32, rx *rxStats, pkts, bytes uint64, rtpTime uint32) {
	var reports []rtcp.ReceptionReport
	m := b.e.metrics
	if rb, ok := rx.reportBlock(now); ok {
		reports = []rtcp.ReceptionReport{rb}
		if rx.clockRate != 0 {
			m.jitter[l.kind].Observe(float64(rb.Jitter) / float64(rx.clockRate))
		}
	}
	if l.rttFresh.Swap(false) {
		rtt := &b.waRTT
		if l.kind == legAgent {
			rtt = &b.agRTT
		}
		m.rtt[l.kind].Observe(time.Duration(rtt.Load()).Seconds())
	}
	var p rtcp.Packet
	if pkts > 0 {
		p = &rtcp.SenderReport{SSRC: ssrc, NTPTime: ntpTime(now), RTPTime: rtpTime,
			PacketCount: uint32(pkts), OctetCount: uint32(bytes), Reports: reports}
	} else {
		p = &rtcp.ReceiverReport{SSRC: ssrc, Reports: reports}
	}
	var err error
	if fl := l.fast.Load(); fl != nil {
		err = fl.writeRTCP([]rtcp.Packet{p})
	} else {
		err = l.pc.WriteRTCP([]rtcp.Packet{p})
	}
	if err != nil {
		b.log.Debug("write rtcp", "leg", l.kind.String(), "err", err)
	}
}
