package metasim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/pion/webrtc/v4"
)

// graphConnect places a business-initiated call toward a simulated user.
func (s *Sim) graphConnect(ctx context.Context, req callsRequest) (any, *graphError) {
	if req.To == "" {
		return nil, errParam("The parameter to is required")
	}
	user, err := normalizeNumber(req.To)
	if err != nil {
		return nil, errParam("Invalid parameter to: not a WhatsApp phone number")
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
	if !s.callingEnabled() {
		return nil, errGraph(http.StatusBadRequest, 138000, "Calling is not enabled for this business phone number")
	}
	now := s.cfg.Clock()
	if gerr := s.checkConnect(user, now); gerr != nil {
		return nil, gerr
	}
	b := s.user(user)
	pkts, err := s.packets(b.Audio)
	if err != nil {
		pkts = s.defPkts
	}
	pc, track, err := s.newUserPeer()
	if err != nil {
		return nil, errGraph(http.StatusInternalServerError, 1, "An unknown error occurred")
	}
	c := s.newCall(businessInitiated, user, "", b.name(), pkts, pc, track)
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
		return fail(errGraph(http.StatusBadRequest, 138007, "Connect timeout"))
	}
	c.ringAt = now
	if err := s.addCall(c); err != nil {
		return fail(errGraph(http.StatusServiceUnavailable, 2, "Service temporarily unavailable"))
	}
	c.wireMedia()
	c.mu.Lock()
	c.goLocked(func() { c.userReacts(b) })
	c.mu.Unlock()
	s.log.Info("metasim: business call placed", "call", c.id, "to", mask(user), "answer", b.Answer)
	return map[string]any{"messaging_product": "whatsapp", "calls": []any{map[string]any{"id": c.id}}}, nil
}

// userReacts plays the user's side of a business-initiated call.
func (c *UserCall) userReacts(b UserBehavior) {
	s := c.s
	s.enqueue("calls", c.statusValue("RINGING"), func(int) { c.mark(Ringing) })
	wait := b.AnswerAfter
	if b.Answer == NoAnswer {
		wait = s.cfg.RingTimeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-t.C:
	}
	switch b.Answer {
	case NoAnswer:
		c.end(endInfo{by: "user"})
	case Decline:
		s.enqueue("calls", c.statusValue("REJECTED"), nil)
		c.end(endInfo{by: "user"})
	default:
		now := s.cfg.Clock()
		if !c.startAccepted(now) {
			return
		}
		ev := c.event("connect", now)
		ev.Session = &session{SDPType: "answer", SDP: c.localSDP}
		s.enqueue("calls", c.callsValue(ev), nil)
		s.enqueue("calls", c.statusValue("ACCEPTED"), nil)
	}
}

type messageRequest struct {
	MessagingProduct string `json:"messaging_product"`
	RecipientType    string `json:"recipient_type"`
	To               string `json:"to"`
	Type             string `json:"type"`
	Interactive      *struct {
		Type string `json:"type"`
		Body *struct {
			Text string `json:"text"`
		} `json:"body"`
		Action *struct {
			Name string `json:"name"`
		} `json:"action"`
	} `json:"interactive"`
}

// graphMessages handles the interactive call_permission_request.
func (s *Sim) graphMessages(body []byte, rec *GraphRequest) (any, *graphError) {
	var req messageRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	rec.To, rec.Action = req.To, req.Type
	if req.MessagingProduct != "whatsapp" {
		return nil, errParam("The parameter messaging_product is required and must be \"whatsapp\"")
	}
	user, err := normalizeNumber(req.To)
	if err != nil {
		return nil, errParam("Invalid parameter to")
	}
	if req.Type != "interactive" || req.Interactive == nil {
		return nil, errParam("Invalid parameter type: this simulator accepts interactive call_permission_request messages")
	}
	rec.Action = req.Interactive.Type
	if req.Interactive.Type != "call_permission_request" {
		return nil, errParam("Invalid parameter interactive.type %q", req.Interactive.Type)
	}
	if req.Interactive.Action == nil || req.Interactive.Action.Name != "call_permission_request" {
		return nil, errParam("The parameter interactive.action.name must be \"call_permission_request\"")
	}
	if req.Interactive.Body == nil || req.Interactive.Body.Text == "" {
		return nil, errParam("The parameter interactive.body.text is required")
	}
	now := s.cfg.Clock()
	if gerr := s.checkRequest(user, now); gerr != nil {
		return nil, gerr
	}
	wamid := newID("wamid.")
	b := s.user(user)
	switch b.Permission {
	case PermissionIgnore:
	case PermissionReject:
		s.sendPermissionReply(user, b.name(), permissionReply{Response: "reject", ResponseSource: "user_action"}, wamid)
	case PermissionAcceptPermanent:
		s.grant(user, grantPermanent, now)
		s.sendPermissionReply(user, b.name(), permissionReply{Response: "accept", IsPermanent: true, ResponseSource: "user_action"}, wamid)
	default:
		exp := s.grant(user, grantTemporary, now)
		s.sendPermissionReply(user, b.name(), permissionReply{Response: "accept", ExpirationTimestamp: exp.Unix(), ResponseSource: "user_action"}, wamid)
	}
	return map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []any{map[string]any{"input": req.To, "wa_id": user}},
		"messages":          []any{map[string]any{"id": wamid}},
	}, nil
}

var hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3])[0-5][0-9]$|^2400$`)

// graphSettings validates and stores the calling settings. Each top-level key
// of "calling" replaces the stored one whole (so call_hours is replaced whole).
func (s *Sim) graphSettings(body []byte) (any, *graphError) {
	var req struct {
		Calling map[string]json.RawMessage `json:"calling"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	if req.Calling == nil {
		return nil, errParam("The parameter calling is required")
	}
	enums := map[string][]string{
		"status":                     {"ENABLED", "DISABLED"},
		"call_icon_visibility":       {"DEFAULT", "DISABLE_ALL"},
		"callback_permission_status": {"ENABLED", "DISABLED"},
		"srtp_key_exchange_protocol": {"DTLS", "SDES"},
	}
	next := map[string]any{}
	for k, raw := range req.Calling {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, errParam("Invalid parameter calling.%s", k)
		}
		if allowed, ok := enums[k]; ok {
			str, _ := v.(string)
			if !contains(allowed, str) {
				return nil, errParam("Invalid parameter calling.%s: must be one of %v", k, allowed)
			}
		}
		if k == "call_hours" {
			if err := checkCallHours(raw); err != nil {
				return nil, errParam("Invalid parameter calling.call_hours: %v", err)
			}
		}
		next[k] = v
	}
	s.mu.Lock()
	for k, v := range next {
		s.settings[k] = v
	}
	s.mu.Unlock()
	return okResp, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func checkCallHours(raw json.RawMessage) error {
	var ch struct {
		Status               string `json:"status"`
		TimezoneID           string `json:"timezone_id"`
		WeeklyOperatingHours []struct {
			DayOfWeek string `json:"day_of_week"`
			OpenTime  string `json:"open_time"`
			CloseTime string `json:"close_time"`
		} `json:"weekly_operating_hours"`
		HolidaySchedule []json.RawMessage `json:"holiday_schedule"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil {
		return fmt.Errorf("bad object: %w", err)
	}
	if ch.Status != "" && ch.Status != "ENABLED" && ch.Status != "DISABLED" {
		return fmt.Errorf("status %q", ch.Status)
	}
	if ch.Status == "ENABLED" {
		if _, err := time.LoadLocation(ch.TimezoneID); err != nil || ch.TimezoneID == "" {
			return fmt.Errorf("timezone_id %q", ch.TimezoneID)
		}
	}
	days := map[string]int{}
	valid := map[string]bool{"MONDAY": true, "TUESDAY": true, "WEDNESDAY": true, "THURSDAY": true, "FRIDAY": true, "SATURDAY": true, "SUNDAY": true}
	for _, w := range ch.WeeklyOperatingHours {
		if !valid[w.DayOfWeek] {
			return fmt.Errorf("day_of_week %q", w.DayOfWeek)
		}
		if !hhmmRE.MatchString(w.OpenTime) || !hhmmRE.MatchString(w.CloseTime) || w.OpenTime >= w.CloseTime {
			return fmt.Errorf("hours %q-%q must be HHMM with open before close", w.OpenTime, w.CloseTime)
		}
		if days[w.DayOfWeek]++; days[w.DayOfWeek] > 2 {
			return fmt.Errorf("more than 2 slots on %s", w.DayOfWeek)
		}
	}
	if len(ch.HolidaySchedule) > 20 {
		return fmt.Errorf("more than 20 holidays")
	}
	return nil
}
