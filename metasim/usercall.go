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
	s        *Sim
	id       string
	dir      direction
	user     string // wa_id digits ("" for a username-only user)
	userID   string
	name     string
	deeplink string
	pkts     [][]byte
	pc       *webrtc.PeerConnection
	track    *audioTrack
	done     chan struct{} // closed when the call ends; stops its goroutines
	localSDP string        // our offer (inbound) or answer (outbound), as sent

	lastRecv atomic.Int64 // unix nanos of the last business RTP packet (real time)
	mediaOff atomic.Bool  // StopMedia: the user's network died; nothing is sent
	rtcp     atomic.Int64

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
}

type recvWaiter struct {
	n  int
	ch chan struct{}
}

func (s *Sim) newCall(dir direction, user, userID, name string, pkts [][]byte, pc *webrtc.PeerConnection, t *audioTrack) *UserCall {
	c := &UserCall{s: s, id: newID("wacid."), dir: dir, user: user, userID: userID, name: name, pkts: pkts, pc: pc, track: t,
		done: make(chan struct{})}
	for i := range c.reached {
		c.reached[i] = make(chan struct{})
	}
	return c
}

// ID returns Meta's call id ("wacid....").
func (c *UserCall) ID() string { return c.id }

// User returns the user's wa_id ("" for a username-only user).
func (c *UserCall) User() string { return c.user }

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
	if accepted {
		ev.Status = "COMPLETED"
		d := int64(endedAt.Sub(acceptedAt) / time.Second)
		ev.StartTime, ev.EndTime, ev.Duration = epoch(acceptedAt), epoch(endedAt), &d
	}
	if e.code != 0 {
		ev.Status = "FAILED"
		ev.Errors = []metaError{{Code: e.code, Title: e.message, Message: e.message}}
	}
	s.enqueue("calls", c.callsValue(ev), nil)
	if c.dir == businessInitiated && !accepted {
		if s.callUnanswered(c.user, endedAt) {
			s.log.Info("metasim: permission revoked after unanswered calls", "user", mask(c.user))
			s.sendPermissionReply(c.user, c.name, permissionReply{Response: "reject", ResponseSource: "automatic"}, "")
		}
	}
	s.log.Info("metasim: call ended", "call", c.id, "by", e.by, "status", ev.Status)
	return true
}

// event builds a calls[] event of this call.
func (c *UserCall) event(name string, at time.Time) callEvent {
	s := c.s
	ev := callEvent{ID: c.id, Event: name, Timestamp: epoch(at), Direction: c.dir.String(), DeeplinkPayload: c.deeplink}
	if c.dir == userInitiated {
		ev.From, ev.FromUserID, ev.To = c.user, c.userID, s.cfg.DisplayPhoneNumber
	} else {
		ev.From, ev.To = s.cfg.DisplayPhoneNumber, c.user
	}
	return ev
}

func (c *UserCall) callsValue(ev callEvent) callsValue {
	return callsValue{MessagingProduct: "whatsapp", Metadata: c.s.meta(),
		Contacts: []contact{newContact(c.name, c.user, c.userID)}, Calls: []callEvent{ev}}
}

func (c *UserCall) statusValue(status string) callsValue {
	return callsValue{MessagingProduct: "whatsapp", Metadata: c.s.meta(),
		Contacts: []contact{newContact(c.name, c.user, c.userID)},
		Statuses: []callStatus{{ID: c.id, Timestamp: epoch(c.s.cfg.Clock()), Type: "call", Status: status, RecipientID: c.user}}}
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
		pkt := c.pkts[i%len(c.pkts)]
		i++
		h := &rtp.Header{SequenceNumber: seq, Timestamp: ts}
		if c.track.write(h, pkt, false) {
			seq++
		}
		ts += opusSamples(pkt)
	}
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
	c.s.callConnected(c.user, c.dir, now)
	return true
}
