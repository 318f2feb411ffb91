package metasim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// graphError is an error answered in Meta's Graph error format.
type graphError struct {
	status  int
	code    int
	subcode int
	typ     string
	msg     string
	details string
}

func (e *graphError) Error() string { return fmt.Sprintf("(#%d) %s", e.code, e.msg) }

func errGraph(status, code int, msg string) *graphError {
	return &graphError{status: status, code: code, typ: "OAuthException", msg: msg}
}

func errParam(format string, a ...any) *graphError {
	return errGraph(http.StatusBadRequest, 100, "(#100) "+fmt.Sprintf(format, a...))
}

const maxGraphBody = 3 << 20

// GraphHandler serves Meta's Graph API for the business number:
// /{version}/{phone-number-id}/calls, /messages, /call_permissions, /settings.
func (s *Sim) GraphHandler() http.Handler {
	return http.HandlerFunc(s.serveGraph)
}

func (s *Sim) serveGraph(w http.ResponseWriter, r *http.Request) {
	rec := GraphRequest{Time: s.cfg.Clock(), Method: r.Method, Path: r.URL.Path}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGraphBody))
	rec.Body = body
	var (
		resp any
		gerr *graphError
	)
	switch {
	case err != nil:
		gerr = errParam("request body too large or unreadable")
	default:
		resp, gerr = s.routeGraph(r, body, &rec)
	}
	if gerr != nil {
		rec.Status, rec.ErrorCode = gerr.status, gerr.code
		writeGraphError(w, gerr)
	} else {
		rec.Status = http.StatusOK
		writeJSON(w, http.StatusOK, resp)
	}
	s.metrics.GraphRequests.WithLabelValues(edgeLabel(rec.Edge), strconv.Itoa(rec.ErrorCode)).Inc()
	s.recordRequest(rec)
}

func edgeLabel(e string) string {
	switch e {
	case "calls", "messages", "call_permissions", "settings":
		return e
	}
	return "other"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeGraphError(w http.ResponseWriter, e *graphError) {
	body := map[string]any{"message": e.msg, "type": e.typ, "code": e.code, "fbtrace_id": newID("A")[:24]}
	if e.subcode != 0 {
		body["error_subcode"] = e.subcode
	}
	if e.details != "" {
		body["error_data"] = map[string]any{"messaging_product": "whatsapp", "details": e.details}
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+e.msg+`"`)
	}
	writeJSON(w, e.status, map[string]any{"error": body})
}

func (s *Sim) routeGraph(r *http.Request, body []byte, rec *GraphRequest) (any, *graphError) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AccessToken)) != 1 {
		return nil, errGraph(http.StatusUnauthorized, 190, "Invalid OAuth access token - Cannot parse access token")
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 {
		return nil, errParam("Unknown path components: %s", r.URL.Path)
	}
	if parts[0] != s.cfg.GraphVersion {
		return nil, errGraph(http.StatusBadRequest, 2635, fmt.Sprintf("Unsupported API version %q (this simulator serves %s)", parts[0], s.cfg.GraphVersion))
	}
	if parts[1] != s.cfg.PhoneNumberID {
		e := errGraph(http.StatusBadRequest, 100, fmt.Sprintf("Unsupported post request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", parts[1]))
		e.subcode, e.typ = 33, "GraphMethodException"
		return nil, e
	}
	rec.Edge = parts[2]
	switch {
	case parts[2] == "calls" && r.Method == http.MethodPost:
		return s.graphCalls(r.Context(), body, rec)
	case parts[2] == "messages" && r.Method == http.MethodPost:
		return s.graphMessages(body, rec)
	case parts[2] == "call_permissions" && r.Method == http.MethodGet:
		u := r.URL.Query().Get("user_wa_id")
		rec.To = u
		n, err := normalizeNumber(u)
		if err != nil {
			return nil, errParam("Invalid parameter user_wa_id")
		}
		return s.permissionsView(n, s.cfg.Clock()), nil
	case parts[2] == "settings" && r.Method == http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		return map[string]any{"calling": cloneJSON(s.settings)}, nil
	case parts[2] == "settings" && r.Method == http.MethodPost:
		return s.graphSettings(body)
	}
	return nil, errParam("Unknown path components: /%s (%s)", parts[2], r.Method)
}

type callsRequest struct {
	MessagingProduct string   `json:"messaging_product"`
	Action           string   `json:"action"`
	CallID           string   `json:"call_id"`
	To               string   `json:"to"`
	Session          *session `json:"session"`
	BizOpaque        string   `json:"biz_opaque_callback_data"`
}

var okResp = map[string]any{"messaging_product": "whatsapp", "success": true}

func (s *Sim) graphCalls(ctx context.Context, body []byte, rec *GraphRequest) (any, *graphError) {
	var req callsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	rec.Action, rec.CallID, rec.To = req.Action, req.CallID, req.To
	if req.Session != nil {
		rec.SDPType = req.Session.SDPType
	}
	if req.MessagingProduct != "whatsapp" {
		return nil, errParam("The parameter messaging_product is required and must be \"whatsapp\"")
	}
	if len(req.BizOpaque) > 512 {
		return nil, errParam("biz_opaque_callback_data must be at most 512 characters")
	}
	if req.Action == "connect" {
		return s.graphConnect(ctx, req)
	}
	switch req.Action {
	case "pre_accept", "accept", "reject", "terminate":
	default:
		return nil, errParam("Invalid parameter action %q", req.Action)
	}
	if req.CallID == "" {
		return nil, errParam("The parameter call_id is required")
	}
	s.mu.Lock()
	c, ok := s.calls[req.CallID]
	s.mu.Unlock()
	if !ok {
		return nil, errParam("Invalid parameter call_id: call not found")
	}
	if c.Reached(Ended) {
		return nil, errParam("Invalid parameter call_id: the call has already ended")
	}
	switch req.Action {
	case "terminate":
		c.end(endInfo{by: "business"})
		return okResp, nil
	case "reject":
		if c.dir != userInitiated {
			return nil, errParam("reject applies to user-initiated calls; use terminate")
		}
		if c.Reached(Accepted) {
			return nil, errParam("The call was already accepted; use terminate")
		}
		c.end(endInfo{by: "business"})
		return okResp, nil
	}
	// pre_accept / accept
	if c.dir != userInitiated {
		return nil, errParam("%s applies to user-initiated calls", req.Action)
	}
	if req.Session == nil || req.Session.SDP == "" {
		return nil, errParam("The parameter session is required")
	}
	if req.Session.SDPType != "answer" {
		return nil, errParam("Invalid parameter session.sdp_type %q: must be \"answer\"", req.Session.SDPType)
	}
	if req.Action == "accept" {
		if c.Reached(Accepted) {
			return nil, errParam("The call was already accepted")
		}
		if now := s.cfg.Clock(); now.Sub(c.ringAt) > s.cfg.AcceptTimeout {
			c.end(endInfo{by: "error:138007", code: 138007, message: "Call was not accepted in time"})
			return nil, errGraph(http.StatusBadRequest, 138007, "Connect timeout: the call was not accepted in time")
		}
	}
	if gerr := c.applyAnswer(req.Session.SDP); gerr != nil {
		return nil, gerr
	}
	if req.Action == "pre_accept" {
		c.mark(PreAccepted)
		return okResp, nil
	}
	if !c.startAccepted(s.cfg.Clock()) {
		return nil, errParam("Invalid parameter call_id: the call has already ended")
	}
	return okResp, nil
}

// applyAnswer validates the business answer and applies it to the user peer
// (once; a later pre_accept/accept must carry the same SDP).
func (c *UserCall) applyAnswer(raw string) *graphError {
	c.mu.Lock()
	prev := c.remoteSDP
	c.mu.Unlock()
	if prev != "" {
		if normSDP(prev) != normSDP(raw) {
			return errParam("Invalid parameter session.sdp: differs from the answer already sent for this call")
		}
		return nil
	}
	if err := checkSDP(raw, "answer"); err != nil {
		return errParam("Invalid parameter session.sdp: %v", err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: raw}); err != nil {
		return errParam("Invalid parameter session.sdp: %v", err)
	}
	c.mu.Lock()
	c.remoteSDP = raw
	c.mu.Unlock()
	return nil
}

func normSDP(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

var fingerprintRE = regexp.MustCompile(`(?i)^sha-(1|224|256|384|512) ([0-9A-F]{2}:)+[0-9A-F]{2}$`)

// checkSDP validates an SDP like Meta would before applying it. typ is
// "answer" (to Meta's offer: the business must be DTLS client, setup:active)
// or "offer" (business-initiated: setup actpass or active).
func checkSDP(raw, typ string) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		return fmt.Errorf("unparsable SDP: %w", err)
	}
	var audio *sdp.MediaDescription
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media == "audio" && audio == nil {
			audio = m
		}
	}
	if audio == nil {
		return errors.New("no audio m-line")
	}
	get := func(key string) string {
		if v, ok := audio.Attribute(key); ok {
			return v
		}
		v, _ := d.Attribute(key)
		return v
	}
	if get("ice-ufrag") == "" || get("ice-pwd") == "" {
		return errors.New("missing ice-ufrag/ice-pwd")
	}
	if fp := get("fingerprint"); !fingerprintRE.MatchString(strings.TrimSpace(fp)) {
		return errors.New("missing or malformed a=fingerprint")
	}
	setup := get("setup")
	switch typ {
	case "answer":
		if setup != "active" {
			return fmt.Errorf("a=setup:%s: the business must be the DTLS client (a=setup:active)", setup)
		}
	case "offer":
		if setup != "actpass" && setup != "active" {
			return fmt.Errorf("a=setup:%s: expected actpass or active", setup)
		}
	}
	if mid := get("mid"); typ == "answer" && mid != audioMid {
		return fmt.Errorf("a=mid:%s: the answer must keep mid %q", mid, audioMid)
	}
	opus := false
	for _, a := range audio.Attributes {
		if a.Key == "rtpmap" && strings.Contains(strings.ToLower(a.Value), "opus/48000") {
			opus = true
		}
	}
	if !opus {
		return errors.New("no opus/48000 codec")
	}
	return nil
}

func cloneJSON(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
