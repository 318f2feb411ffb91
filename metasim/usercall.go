package metasim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// UserCall is the WhatsApp user's side of one call.
type UserCall struct {
	s         *Sim
	id        string
	dir       direction
	num       *bizNumber
	key       string     // the user's key (phone digits, or BSUID when phone-less)
	cont      continuity // the RTP stream received (continuity.go)
	usr       *simUser
	user      string // wa_id digits ("" for a phone-less user)
	userID    string // BSUID
	name      string
	deeplink  string
	cta       string
	companion bool
	pkts      [][]byte
	pc        *webrtc.PeerConnection
	track     *audioTrack
	done      chan struct{} // closed when the call ends; stops its goroutines
	localSDP  string        // our offer (inbound) or answer (outbound), as sent

	lastRecv     atomic.Int64 // unix nanos of the last business RTP packet (real time)
	firstRecv    atomic.Int64 // unix nanos of the first business RTP packet (real time)
	acceptDone   atomic.Bool  // the accept 200 was written (UIC)
	beforeAccept atomic.Int64 // business RTP packets that arrived before acceptDone
	mediaOff     atomic.Bool  // StopMedia: the user's network died; nothing is sent
	rtcp         atomic.Int64

	mu          sync.Mutex
	reached     [numStates]chan struct{}
	closed      bool
	remoteSDP   string    // the business answer applied (inbound)
	ringAt      time.Time // Clock
	acceptedAt  time.Time // Clock
	acceptedRT  time.Time // real time of accept (media watchdog)
	endedAt     time.Time
	endedBy     string
	received    [][]byte // ring buffer of Opus payloads
	recvHead    int
	recvTotal   int
	recvWaiters []recvWaiter
	dtmfIn      strings.Builder
	dtmfTS      uint32
	dtmfSeen    bool
	dtmfOut     []byte
	mediaStart  bool
	bizOpaque   string
	recording   *featureOpts
	transcript  *featureOpts
	played      [][]byte // user's audio frames sent after pickup (recording), bounded
	playedTotal int
}

type recvWaiter struct {
	n  int
	ch chan struct{}
}

func (s *Sim) newCall(dir direction, num *bizNumber, u *simUser, pkts [][]byte, pc *webrtc.PeerConnection, t *audioTrack) *UserCall {
	c := &UserCall{s: s, id: newID("wacid."), dir: dir, num: num, key: u.key, usr: u, user: u.phone, userID: u.b.BSUID,
		name: u.b.name(), pkts: pkts, pc: pc, track: t, done: make(chan struct{})}
	for i := range c.reached {
		c.reached[i] = make(chan struct{})
	}
	return c
}

// ID returns Meta's call id ("wacid....").
func (c *UserCall) ID() string { return c.id }

// User returns the user's wa_id ("" for a phone-less user).
func (c *UserCall) User() string { return c.user }

// UserID returns the user's BSUID.
func (c *UserCall) UserID() string { return c.userID }

// PhoneNumberID returns the business number's Graph id the call belongs to.
func (c *UserCall) PhoneNumberID() string { return c.num.PhoneNumberID }

// RTPBeforeAccept counts business RTP packets (audio or DTMF) that reached
// the user before the accept call returned 200 (user-initiated calls). The
// real client treats the first one as "answered": it must stay 0.
func (c *UserCall) RTPBeforeAccept() int { return int(c.beforeAccept.Load()) }

// ClientAnsweredAt is when the user's client considered the call answered
// (real time): the first business media packet or the accept, whichever came
// first; zero before either.
func (c *UserCall) ClientAnsweredAt() time.Time {
	c.mu.Lock()
	acc := c.acceptedRT
	c.mu.Unlock()
	first := c.firstRecv.Load()
	switch {
	case first != 0 && (acc.IsZero() || time.Unix(0, first).Before(acc)):
		return time.Unix(0, first)
	default:
		return acc
	}
}

// AcceptedAt returns Meta's pickup time (Clock): accept (UIC) or the user
// answering (BIC); zero if never.
func (c *UserCall) AcceptedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acceptedAt
}

// Direction returns "USER_INITIATED" or "BUSINESS_INITIATED".
func (c *UserCall) Direction() string { return c.dir.String() }

// LocalSDP returns the SDP the user peer sent (offer for inbound, answer for outbound).
func (c *UserCall) LocalSDP() string { return c.localSDP }

// State returns the latest state reached.
func (c *UserCall) State() CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	for st := numStates - 1; st > StateUnknown; st-- {
		select {
		case <-c.reached[st]:
			return st
		default:
		}
	}
	return StateUnknown
}

// Reached reports whether the call has reached st.
func (c *UserCall) Reached(st CallState) bool {
	if st <= StateUnknown || st >= numStates {
		return false
	}
	select {
	case <-c.reached[st]:
		return true
	default:
		return false
	}
}

// markLocked records st as reached; c.mu must be held.
func (c *UserCall) markLocked(st CallState) {
	select {
	case <-c.reached[st]:
	default:
		close(c.reached[st])
	}
}

func (c *UserCall) mark(st CallState) {
	c.mu.Lock()
	if !c.closed || st == Ended {
		c.markLocked(st)
	}
	c.mu.Unlock()
}

// WaitState waits until the call reaches st. It returns ErrCallEnded when the
// call ends without reaching st, or ctx's error.
func (c *UserCall) WaitState(ctx context.Context, st CallState) error {
	if st <= StateUnknown || st >= numStates {
		return fmt.Errorf("metasim: wait for invalid state %d", st)
	}
	select {
	case <-c.reached[st]:
		return nil
	case <-c.reached[Ended]:
		select {
		case <-c.reached[st]:
			return nil
		default:
			return fmt.Errorf("%w (%s) before %s", ErrCallEnded, c.EndedBy(), st)
		}
	case <-ctx.Done():
		return fmt.Errorf("metasim: wait %s: %w", st, ctx.Err())
	}
}

// Received returns copies of the Opus payloads received from the business,
// oldest first (at most Config.RecordLimit, the most recent ones).
func (c *UserCall) Received() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, 0, len(c.received))
	for i := range c.received {
		out = append(out, bytes.Clone(c.received[(c.recvHead+i)%len(c.received)]))
	}
	return out
}

// ReceivedCount returns how many Opus packets were received in total.
func (c *UserCall) ReceivedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recvTotal
}

// WaitReceived waits until at least n Opus packets have been received.
func (c *UserCall) WaitReceived(ctx context.Context, n int) error {
	c.mu.Lock()
	if c.recvTotal >= n {
		c.mu.Unlock()
		return nil
	}
	w := recvWaiter{n: n, ch: make(chan struct{})}
	c.recvWaiters = append(c.recvWaiters, w)
	c.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-c.reached[Ended]:
		select {
		case <-w.ch:
			return nil
		default:
		}
		return fmt.Errorf("%w before %d packets arrived", ErrCallEnded, n)
	case <-ctx.Done():
		return fmt.Errorf("metasim: wait received: %w", ctx.Err())
	}
}

// RTCPReceived returns how many RTCP packets the user peer has read.
func (c *UserCall) RTCPReceived() int64 { return c.rtcp.Load() }

// StopMedia stops the user's audio without ending the call, as when the
// phone loses its network: the business side should notice (its media
// watchdog) and end the call.
func (c *UserCall) StopMedia() { c.mediaOff.Store(true) }

// ReceivedDTMF returns the RFC 4733 digits received from the business.
func (c *UserCall) ReceivedDTMF() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dtmfIn.String()
}

// SendDTMF queues RFC 4733 digits (0-9 * # A-D) toward the business. Each
// digit lasts 160 ms (audio muted meanwhile) followed by 60 ms of audio.
func (c *UserCall) SendDTMF(digits string) error {
	for _, r := range digits {
		if dtmfCode(byte(r)) < 0 || r > 0x7f {
			return fmt.Errorf("%w: %q", ErrInvalidDigits, digits)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrCallEnded
	}
	select {
	case <-c.reached[Connected]:
	default:
		return ErrNotConnected
	}
	c.dtmfOut = append(c.dtmfOut, digits...)
	return nil
}

// EndedBy returns "user", "business" or "error:<code>" once ended ("" before).
func (c *UserCall) EndedBy() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endedBy
}

// Hangup ends the call from the user's side: the peer closes and Meta sends
// the terminate webhook (COMPLETED if it had been accepted, else FAILED).
func (c *UserCall) Hangup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metasim: hangup: %w", err)
	}
	if !c.end(endInfo{by: "user"}) {
		return ErrCallEnded
	}
	return nil
}

type endInfo struct {
	by      string // user, business, error:<code>, closed
	code    int    // Meta error code for terminate errors[] (0: none)
	message string
	silent  bool // no terminate webhook (simulator closing)
}

// end finishes the call once; it reports whether this call did it.
func (c *UserCall) end(e endInfo) bool {
	s := c.s
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	close(c.done)
	c.endedBy = e.by
	c.endedAt = s.cfg.Clock()
	accepted, acceptedAt, endedAt := !c.acceptedAt.IsZero(), c.acceptedAt, c.endedAt
	for _, w := range c.recvWaiters {
		close(w.ch)
	}
	c.recvWaiters = nil
	c.mu.Unlock()

	if err := c.pc.Close(); err != nil {
		s.log.Debug("metasim: close peer", "call", c.id, "err", err)
	}
	s.metrics.ActiveCalls.Dec()
	c.mark(Ended)
	if e.silent {
		return true
	}
	ev := c.event("terminate", endedAt)
	ev.Status = "FAILED"
	var dur int64
	if accepted {
		ev.Status = "COMPLETED"
		dur = int64(endedAt.Sub(acceptedAt) / time.Second)
		d := dur
		if s.chance(s.Adversary().DurationMismatch) {
			d = dur*4 + 1 // Meta's sample: duration 480 with end−start 120
		}
		ev.StartTime, ev.EndTime, ev.Duration = epoch(acceptedAt), epoch(endedAt), &d
	}
	v := c.callsValue(ev)
	if e.code != 0 {
		ev.Status = "FAILED"
		me := metaError{Code: e.code, Title: e.message, Message: e.message,
			Href:      "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
			ErrorData: &errorData{Details: e.message}}
		v.Calls[0].Status = "FAILED"
		v.Errors = []metaError{me}
		if s.Adversary().ExtraErrorsInCall {
			v.Calls[0].Errors = []metaError{me}
		}
	}
	s.enqueue(c.num, "calls", "terminate", v, nil)
	s.recordCall(c, accepted, acceptedAt, endedAt, dur)
	if accepted {
		c.sendRecordings(endedAt)
	}
	if c.dir == businessInitiated && !accepted {
		if s.callUnanswered(c.num, c.key, endedAt) {
			s.log.Info("metasim: permission revoked after unanswered calls", "user", mask(c.user))
			s.sendPermissionReply(c.num, s.view(c.usr), permissionReply{Response: "reject", ResponseSource: "automatic"}, "")
		}
	}
	if c.dir == userInitiated && !c.companion && s.callbackEnabled(c.num) {
		// callback permission: the user gets a prompt after a missed or
		// connected call and grants it (automatic accept, context = wacid).
		if exp := s.grant(c.num, c.key, grantTemporary, endedAt); !exp.IsZero() {
			s.sendPermissionReply(c.num, s.view(c.usr), permissionReply{
				Response: "accept", ExpirationTimestamp: epoch(exp), ResponseSource: "automatic",
			}, c.id)
		}
	}
	s.log.Info("metasim: call ended", "call", c.id, "by", e.by, "status", ev.Status)
	return true
}

// EndWithError ends the call from Meta's side with a terminate-only error
// (138019 setup failed, 138020 relay unreachable, 138021 no media from the
// business, 138022 client could not transmit, 138023 no media signals): the
// terminate webhook has status FAILED and errors[] at value.errors.
func (c *UserCall) EndWithError(code int) error {
	msg, ok := terminateErrors[code]
	if !ok {
		return fmt.Errorf("%w: %d is not a terminate error code (138019-138023)", ErrInvalidCode, code)
	}
	if !c.end(endInfo{by: fmt.Sprintf("error:%d", code), code: code, message: msg}) {
		return ErrCallEnded
	}
	return nil
}

var terminateErrors = map[int]string{
	138019: "The WhatsApp client failed to set up the call",
	138020: "The WhatsApp client could not reach the relay server",
	138021: "The WhatsApp client ended the call: not receiving any media for a long time",
	138022: "The WhatsApp client could not transmit media",
	138023: "The call was accepted and ended with no media signals",
}

// event builds a calls[] event of this call.
func (c *UserCall) event(name string, at time.Time) callEvent {
	s := c.s
	u := s.view(c.usr)
	c.mu.Lock()
	opaque := c.bizOpaque
	c.mu.Unlock()
	ev := callEvent{ID: c.id, Event: name, Timestamp: epoch(at), Direction: c.dir.String(),
		DeeplinkPayload: c.deeplink, CTAPayload: c.cta}
	if name == "terminate" || c.dir == businessInitiated {
		ev.BizOpaque = opaque
	}
	if c.dir == userInitiated {
		ev.From, ev.FromUserID, ev.FromParentUserID, ev.To = u.phone, u.bsuid, u.parent, c.num.DisplayPhoneNumber
	} else {
		ev.From, ev.To, ev.ToUserID, ev.ToParentUserID = c.num.DisplayPhoneNumber, u.phone, u.bsuid, u.parent
	}
	return ev
}

func (c *UserCall) callsValue(ev callEvent) callsValue {
	return callsValue{MessagingProduct: "whatsapp", Metadata: c.num.meta(),
		Contacts: []contact{c.s.view(c.usr).contact()}, Calls: []callEvent{ev}}
}

// statusValue builds a BIC statuses[] change at the given Clock time.
func (c *UserCall) statusValue(status string, at time.Time) callsValue {
	u := c.s.view(c.usr)
	c.mu.Lock()
	opaque := c.bizOpaque
	c.mu.Unlock()
	return callsValue{MessagingProduct: "whatsapp", Metadata: c.num.meta(),
		Contacts: []contact{u.contact()},
		Statuses: []callStatus{{ID: c.id, Timestamp: epoch(at), Type: "call", Status: status,
			RecipientID: u.phone, RecipientUserID: u.bsuid, RecipientParentUserID: u.parent, BizOpaque: opaque}}}
}

// goLocked starts a goroutine owned by the simulator unless the call is
// closed; c.mu must be held (so no goroutine starts after end).
func (c *UserCall) goLocked(f func()) {
	if c.closed {
		return
	}
	c.s.wg.Go(f)
}

// wireMedia installs the Pion callbacks and starts the RTCP readers.
func (c *UserCall) wireMedia() {
	c.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			c.mu.Lock()
			if !c.closed {
				c.markLocked(Connected)
				if !c.mediaStart {
					c.mediaStart = true
					c.goLocked(c.playLoop)
				}
			}
			c.mu.Unlock()
		case webrtc.PeerConnectionStateFailed:
			c.mu.Lock()
			c.goLocked(func() { c.end(endInfo{by: "error:ice", code: 138021, message: "Media connection failed"}) })
			c.mu.Unlock()
		}
	})
	c.pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		c.mu.Lock()
		c.goLocked(func() { c.readLoop(tr, rcv) })
		c.goLocked(func() { c.rtcpLoop(rcv.ReadRTCP) })
		c.mu.Unlock()
	})
	for _, snd := range c.pc.GetSenders() {
		c.mu.Lock()
		c.goLocked(func() { c.rtcpLoop(snd.ReadRTCP) })
		c.mu.Unlock()
	}
}

func (c *UserCall) rtcpLoop(read func() ([]rtcp.Packet, interceptor.Attributes, error)) {
	for {
		pkts, _, err := read()
		if err != nil {
			return
		}
		c.rtcp.Add(int64(len(pkts)))
	}
}

// readLoop records Opus payloads and telephone-event digits until EOF.
func (c *UserCall) readLoop(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
	var dtmf uint8 = dtmfPT
	for _, cp := range rcv.GetParameters().Codecs {
		if strings.EqualFold(cp.MimeType, "audio/telephone-event") {
			dtmf = uint8(cp.PayloadType)
		}
	}
	opus := uint8(tr.Codec().PayloadType)
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.s.log.Debug("metasim: read rtp", "call", c.id, "err", err)
			}
			return
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if p.PayloadType == opus || p.PayloadType == dtmf {
			c.cont.observe(time.Now(), p.SSRC, p.SequenceNumber, p.Timestamp) // continuity.go
			c.firstRecv.CompareAndSwap(0, time.Now().UnixNano())
			if c.dir == userInitiated && !c.acceptDone.Load() {
				c.beforeAccept.Add(1)
			}
		}
		switch p.PayloadType {
		case opus:
			c.lastRecv.Store(time.Now().UnixNano())
			c.recordOpus(p.Payload)
		case dtmf:
			c.lastRecv.Store(time.Now().UnixNano())
			c.recordDTMF(p.Timestamp, p.Payload)
		}
	}
}

func (c *UserCall) recordOpus(payload []byte) {
	cp := bytes.Clone(payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := c.s.cfg.RecordLimit
	if len(c.received) < limit {
		c.received = append(c.received, cp)
	} else {
		c.received[c.recvHead] = cp
		c.recvHead = (c.recvHead + 1) % limit
	}
	c.recvTotal++
	kept := c.recvWaiters[:0]
	for _, w := range c.recvWaiters {
		if c.recvTotal >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	c.recvWaiters = kept
}

const dtmfChars = "0123456789*#ABCD"

func dtmfCode(b byte) int { return strings.IndexByte(dtmfChars, b) }

// recordDTMF records an RFC 4733 event once per event timestamp.
func (c *UserCall) recordDTMF(ts uint32, payload []byte) {
	if len(payload) < 4 || int(payload[0]) >= len(dtmfChars) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dtmfSeen && c.dtmfTS == ts {
		return
	}
	c.dtmfSeen, c.dtmfTS = true, ts
	c.dtmfIn.WriteByte(dtmfChars[payload[0]])
}

// playLoop sends the user's audio in a loop with 20 ms pacing and real RTP
// timestamps, interleaving queued DTMF events on the same SSRC.
func (c *UserCall) playLoop() {
	t := time.NewTicker(frameTime * time.Millisecond)
	defer t.Stop()
	var (
		seq     = uint16(time.Now().UnixNano())
		ts      = uint32(time.Now().UnixNano() >> 8)
		i       int
		digit   = -1 // current DTMF event code
		step    int
		eventTS uint32
		gap     int // audio frames after an event
	)
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if c.mediaOff.Load() {
			continue
		}
		if digit < 0 && gap == 0 {
			c.mu.Lock()
			if len(c.dtmfOut) > 0 {
				digit, step, eventTS = dtmfCode(c.dtmfOut[0]), 0, ts
				c.dtmfOut = c.dtmfOut[1:]
			}
			c.mu.Unlock()
		}
		if digit >= 0 {
			const steps = 8 // 8 x 20 ms = 160 ms
			end := step >= steps-1
			dur := uint16((step + 1) * 160) // 8 kHz units
			payload := []byte{byte(digit), 10, byte(dur >> 8), byte(dur)}
			if end {
				payload[1] |= 0x80
			}
			reps := 1
			if end {
				reps = 3 // RFC 4733 §2.5.1.4: the end packet is sent three times
			}
			for r := 0; r < reps; r++ {
				h := &rtp.Header{Marker: step == 0, SequenceNumber: seq, Timestamp: eventTS}
				c.track.write(h, payload, true)
				seq++
			}
			ts += 960
			step++
			if end {
				digit, gap = -1, 3
			}
			continue
		}
		if gap > 0 {
			gap--
		}
		if !c.Reached(Accepted) {
			// before pickup: silence only (no meaningful audio before ACCEPTED / accept)
			h := &rtp.Header{SequenceNumber: seq, Timestamp: ts}
			if c.track.write(h, opusSilence, false) {
				seq++
			}
			ts += 960
			continue
		}
		pkt := c.pkts[i%len(c.pkts)]
		i++
		h := &rtp.Header{SequenceNumber: seq, Timestamp: ts}
		if c.track.write(h, pkt, false) {
			seq++
			c.keepPlayed(pkt)
		}
		ts += opusSamples(pkt)
	}
}

// opusSilence is a 20 ms CELT silence frame (TOC 0xF8).
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// keepPlayed keeps the user's audio after pickup for the call recording.
func (c *UserCall) keepPlayed(pkt []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.played) < c.s.cfg.RecordLimit {
		c.played = append(c.played, pkt) // the packets are shared, read-only
	}
	c.playedTotal++
}

// watchMedia ends an accepted call when the business sends no media:
// NoMediaTimeout after accept, MidCallNoMediaTimeout once media flowed.
func (c *UserCall) watchMedia(acceptedRT time.Time) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		deadline := acceptedRT.Add(c.s.cfg.NoMediaTimeout)
		if last := c.lastRecv.Load(); last != 0 {
			if d := time.Unix(0, last).Add(c.s.cfg.MidCallNoMediaTimeout); d.After(deadline) {
				deadline = d
			}
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			c.end(endInfo{by: "error:138021", code: 138021, message: "The WhatsApp client ended the call: not receiving any media for a long time"})
			return
		}
		t.Reset(wait)
		select {
		case <-c.done:
			return
		case <-t.C:
		}
	}
}

// startAccepted marks the call accepted at now and starts the media watchdog.
func (c *UserCall) startAccepted(now time.Time) bool {
	c.mu.Lock()
	if c.closed || !c.acceptedAt.IsZero() {
		c.mu.Unlock()
		return false
	}
	c.acceptedAt, c.acceptedRT = now, time.Now()
	c.markLocked(Accepted)
	rt := c.acceptedRT
	c.goLocked(func() { c.watchMedia(rt) })
	c.mu.Unlock()
	c.s.callConnected(c.num, c.key, c.dir, now)
	return true
}
