package metasim

import (
	"context"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"
)

// graphConnect places a business-initiated call toward a simulated user:
// 200 {"calls":[{"id"}]} or a synchronous error, then (asynchronously) the
// connect webhook with the user's SDP answer before pickup, RINGING, and
// ACCEPTED / REJECTED / nothing, then terminate.
func (s *Sim) graphConnect(ctx context.Context, num *bizNumber, req callsRequest) (any, *graphError) {
	u, gerr := s.resolveUser(req.To, req.Recipient, "to", "recipient")
	if gerr != nil {
		return nil, gerr
	}
	if req.Session == nil || req.Session.SDP == "" {
		return nil, errParam("The parameter session is required")
	}
	if req.Session.SDPType != "offer" {
		return nil, errParam("Invalid parameter session.sdp_type %q: must be \"offer\"", req.Session.SDPType)
	}
	if err := checkSDP(req.Session.SDP, "offer"); err != nil {
		return nil, errParam("Invalid parameter session.sdp: %v", err)
	}
	rec, tr, gerr := checkFeatures(req.Recording, req.Transcription)
	if gerr != nil {
		return nil, gerr
	}
	if !s.callingEnabled(num) {
		return nil, errGraph(http.StatusUnauthorized, 138000, "Calling is not enabled for this business phone number")
	}
	if num.NoBIC {
		e := errGraph(http.StatusBadRequest, 138013, "Business-initiated calling is not available for this business phone number")
		e.subcode = 2593139
		return nil, e
	}
	now := s.cfg.Clock()
	if gerr := s.checkConnect(num, u.key, now); gerr != nil {
		return nil, gerr
	}
	pkts, err := s.packets(u.b.Audio)
	if err != nil {
		pkts = s.defPkts
	}
	pc, track, err := s.newUserPeer()
	if err != nil {
		return nil, errGraph(http.StatusInternalServerError, 138004, "Connection error")
	}
	c := s.newCall(businessInitiated, num, u, pkts, pc, track)
	c.bizOpaque, c.recording, c.transcript = req.BizOpaque, rec, tr
	fail := func(g *graphError) (any, *graphError) {
		_ = pc.Close()
		return nil, g
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: req.Session.SDP}); err != nil {
		return fail(errParam("Invalid parameter session.sdp: %v", err))
	}
	if _, err := pc.AddTrack(track); err != nil {
		return fail(errParam("Invalid parameter session.sdp: no usable audio section: %v", err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(errParam("Invalid parameter session.sdp: %v", err))
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c.localSDP, err = gatherLocal(gctx, pc, answer)
	cancel()
	if err != nil {
		return fail(errGraph(http.StatusInternalServerError, 138004, "Connection error"))
	}
	c.ringAt = now
	if err := s.addCall(c); err != nil {
		return fail(errGraph(http.StatusServiceUnavailable, 2, "Service temporarily unavailable"))
	}
	c.wireMedia()
	c.mu.Lock()
	c.goLocked(func() { c.userReacts(u.b) })
	c.mu.Unlock()
	s.log.Info("metasim: business call placed", "call", c.id, "to", mask(u.phone), "answer", u.b.Answer)
	return map[string]any{"messaging_product": "whatsapp", "calls": []any{map[string]any{"id": c.id}}}, nil
}

// userReacts plays Meta and the user on a business-initiated call: the
// connect webhook with the SDP answer as soon as the call can be connected
// (before pickup), RINGING, then after the ring delay ACCEPTED (pickup;
// its timestamp is terminate's start_time), REJECTED (decline) or, without
// an answer, terminate after Config.RingTimeout.
func (c *UserCall) userReacts(b UserBehavior) {
	s := c.s
	now := s.cfg.Clock()
	ev := c.event("connect", now)
	ev.Session = &session{SDPType: "answer", SDP: c.localSDP}
	s.enqueue(c.num, "calls", "connect", c.callsValue(ev), nil)
	s.enqueue(c.num, "calls", "RINGING", c.statusValue("RINGING", now), func(int) { c.mark(Ringing) })
	wait := b.AnswerAfter
	if b.Answer == NoAnswer || wait > s.cfg.RingTimeout {
		wait = s.cfg.RingTimeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-t.C:
	}
	switch {
	case b.Answer == NoAnswer || b.AnswerAfter > s.cfg.RingTimeout:
		c.end(endInfo{by: "no_answer"})
	case b.Answer == Decline:
		s.enqueue(c.num, "calls", "REJECTED", c.statusValue("REJECTED", s.cfg.Clock()), nil)
		c.end(endInfo{by: "user"})
	default:
		now := s.cfg.Clock()
		if !c.startAccepted(now) {
			return
		}
		s.openWindow(c.num, c.key, now) // accepting a business call opens the window
		s.enqueue(c.num, "calls", "ACCEPTED", c.statusValue("ACCEPTED", now), nil)
	}
}
