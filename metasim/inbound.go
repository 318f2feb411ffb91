package metasim

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/pion/webrtc/v4"
)

// CallOptions describe a user-initiated call.
type CallOptions struct {
	From string // caller's number, E.164 ('+' optional); required unless FromUserID is set
	Name string // profile name (default: the user's, else "WhatsApp User")
	// Audio is the Ogg Opus the caller plays in a loop after accept (nil: the
	// user's UserBehavior.Audio, else the embedded greeting).
	Audio []byte
	// FromUserID is the caller's BSUID. Alone (no From) it places the call as
	// a phone-less user: webhooks carry from_user_id and no from.
	FromUserID      string
	DeeplinkPayload string // wa.me/call biz_payload, echoed as deeplink_payload
	CTAPayload      string // call button payload, echoed as cta_payload
	// Companion: the call is placed from a companion device: Meta grants no
	// callback permission for it (not supported yet, per the reference).
	Companion bool
	// To is the business number called: its phone number id or display
	// number ("" = the primary number).
	To string
}

func (s *Sim) packets(audio []byte) ([][]byte, error) {
	if audio == nil {
		return s.defPkts, nil
	}
	pkts, err := oggopus.ReadPackets(bytes.NewReader(audio))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAudio, err)
	}
	if len(pkts) == 0 {
		return nil, fmt.Errorf("%w: no audio packets", ErrInvalidAudio)
	}
	return pkts, nil
}

// PlaceCall starts a user-initiated call: the user peer makes an offer like
// WhatsApp's and Meta sends the signed connect webhook (sdp_type offer). The
// call reaches Ringing once the webhook is delivered; unless accepted within
// Config.AcceptTimeout it ends with a FAILED terminate webhook.
func (s *Sim) PlaceCall(ctx context.Context, o CallOptions) (*UserCall, error) {
	num := s.number(o.To)
	if num == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNumber, o.To)
	}
	u, err := s.userForCall(o)
	if err != nil {
		return nil, err
	}
	if !s.callingEnabled(num) {
		return nil, ErrCallingDisabled
	}
	audio := o.Audio
	if audio == nil {
		audio = u.b.Audio
	}
	pkts, err := s.packets(audio)
	if err != nil {
		return nil, err
	}
	pc, track, err := s.newUserPeer()
	if err != nil {
		return nil, err
	}
	c := s.newCall(userInitiated, num, u, pkts, pc, track)
	if o.Name != "" && o.Name != u.b.Name {
		b := u.b
		b.Name = o.Name
		if err := s.AddUser(u.key, b); err == nil {
			s.mu.Lock()
			c.usr = s.users[u.key]
			s.mu.Unlock()
		}
		c.name = o.Name
	}
	c.deeplink, c.cta, c.companion = o.DeeplinkPayload, o.CTAPayload, o.Companion
	fail := func(err error) (*UserCall, error) {
		_ = pc.Close()
		return nil, err
	}
	tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return fail(fmt.Errorf("%w: add track: %w", ErrPeer, err))
	}
	if err := tr.SetMid(audioMid); err != nil {
		return fail(fmt.Errorf("%w: set mid: %w", ErrPeer, err))
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: create offer: %w", ErrPeer, err))
	}
	if c.localSDP, err = gatherLocal(ctx, pc, offer); err != nil {
		return fail(err)
	}
	now := s.cfg.Clock()
	c.ringAt = now
	if err := s.addCall(c); err != nil {
		return fail(err)
	}
	c.wireMedia()

	s.openWindow(num, u.key, now) // a user's call opens the customer service window
	ev := c.event("connect", now)
	ev.Session = &session{SDPType: "offer", SDP: c.localSDP}
	if s.chance(s.Adversary().OmitDirection) {
		ev.Direction = "" // one Meta UIC sample has no direction
	}
	s.enqueue(num, "calls", "connect", c.callsValue(ev), func(int) { c.mark(Ringing) })
	c.mu.Lock()
	c.goLocked(c.acceptDeadline)
	c.mu.Unlock()
	s.log.Info("metasim: user call placed", "call", c.id, "from", mask(u.phone), "number", num.PhoneNumberID)
	return c, nil
}

// acceptDeadline ends an inbound call not accepted within AcceptTimeout.
func (c *UserCall) acceptDeadline() {
	t := time.NewTimer(c.s.cfg.AcceptTimeout)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-c.reached[Accepted]:
		return
	case <-t.C:
	}
	c.end(endInfo{by: "error:138007", code: 138007, message: "Call was not accepted in time"})
}
