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
	From            string // caller's number, E.164 ('+' optional); required unless FromUserID is set
	Name            string // profile name (default "WhatsApp User")
	Audio           []byte // Ogg Opus the caller plays in a loop (nil: the embedded greeting)
	FromUserID      string // username user without a phone number: webhooks carry from_user_id, no from
	DeeplinkPayload string // wa.me/call biz_payload, echoed as deeplink_payload
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
	var user string
	if o.From != "" || o.FromUserID == "" {
		n, err := normalizeNumber(o.From)
		if err != nil {
			return nil, err
		}
		user = n
	}
	if !s.callingEnabled() {
		return nil, ErrCallingDisabled
	}
	pkts, err := s.packets(o.Audio)
	if err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = "WhatsApp User"
	}
	pc, track, err := s.newUserPeer()
	if err != nil {
		return nil, err
	}
	c := s.newCall(userInitiated, user, o.FromUserID, name, pkts, pc, track)
	c.deeplink = o.DeeplinkPayload
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

	ev := c.event("connect", now)
	ev.Session = &session{SDPType: "offer", SDP: c.localSDP}
	s.enqueue("calls", c.callsValue(ev), func(int) { c.mark(Ringing) })
	if user != "" && s.callbackEnabled() {
		exp := s.grant(user, grantTemporary, now)
		if !exp.IsZero() {
			s.sendPermissionReply(user, name, permissionReply{
				Response: "accept", ExpirationTimestamp: exp.Unix(), ResponseSource: "automatic",
			}, c.id)
		}
	}
	c.mu.Lock()
	c.goLocked(c.acceptDeadline)
	c.mu.Unlock()
	s.log.Info("metasim: user call placed", "call", c.id, "from", mask(user))
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
