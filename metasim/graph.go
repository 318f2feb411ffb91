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
	s.learnBase(r)
	rec := GraphRequest{Time: s.cfg.Clock(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGraphBody))
	rec.Body = body
	var (
		resp any
		gerr *graphError
		raw  *rawResponse
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
		if rec.Action == "accept" {
			if c, ok := s.Call(rec.CallID); ok {
				c.acceptDone.Store(true) // RTP from now on no longer counts as "before accept"
			}
		}
		if rr, ok := resp.(*rawResponse); ok {
			raw = rr
			w.Header().Set("Content-Type", raw.mime)
			w.Header().Set("Content-Length", strconv.Itoa(len(raw.body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(raw.body)
		} else {
			writeJSON(w, http.StatusOK, resp)
		}
	}
	s.metrics.GraphRequests.WithLabelValues(edgeLabel(rec.Edge), strconv.Itoa(rec.ErrorCode)).Inc()
	s.recordRequest(rec)
}

// rawResponse is a non-JSON answer (media downloads).
type rawResponse struct {
	mime string
	body []byte
}

// learnBase remembers the absolute URL the Graph handler is reached at
// (behind http.StripPrefix, RequestURI keeps the prefix).
func (s *Sim) learnBase(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.graphBase != "" || r.Host == "" {
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	uri := r.RequestURI
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	prefix := strings.TrimSuffix(uri, r.URL.Path)
	s.graphBase = scheme + "://" + r.Host + prefix
}

func edgeLabel(e string) string {
	switch e {
	case "calls", "messages", "call_permissions", "settings", "message_templates", "analytics", "media":
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
	if e.status == http.StatusUnauthorized && e.code == 190 {
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+e.msg+`"`)
	}
	writeJSON(w, e.status, map[string]any{"error": body})
}

var errToken = errGraph(http.StatusUnauthorized, 190, "Invalid OAuth access token - Cannot parse access token")

func errObject(id string) *graphError {
	e := errGraph(http.StatusBadRequest, 100, fmt.Sprintf("Unsupported request - method type: get. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", id))
	e.subcode, e.typ = 33, "GraphMethodException"
	return e
}

// tokenFor reports whether tok is valid for a WABA (any of its numbers'
// tokens or the business token) or, with waba "", for any number.
func (s *Sim) tokenFor(waba, tok string) bool {
	ok := subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AccessToken)) == 1
	for _, n := range s.order {
		if waba == "" || n.WABAID == waba {
			ok = n.tokenOK(tok) || ok
		}
	}
	return ok
}

func (s *Sim) isWABA(id string) bool {
	for _, n := range s.order {
		if n.WABAID == id {
			return true
		}
	}
	return false
}

func (s *Sim) routeGraph(r *http.Request, body []byte, rec *GraphRequest) (any, *graphError) {
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, errParam("Unknown path components: %s", r.URL.Path)
	}
	if parts[0] != s.cfg.GraphVersion {
		return nil, errGraph(http.StatusBadRequest, 2635, fmt.Sprintf("Unsupported API version %q (this simulator serves %s)", parts[0], s.cfg.GraphVersion))
	}
	if !hasTok {
		return nil, errToken
	}
	id := parts[1]
	if len(parts) == 3 && id == "media_download" && r.Method == http.MethodGet {
		rec.Edge = "media"
		if !s.tokenFor("", tok) {
			return nil, errToken
		}
		return s.downloadMedia(parts[2], r.URL.Query())
	}
	if num := s.numbers[id]; num != nil {
		rec.PhoneNumberID = id
		if !num.tokenOK(tok) {
			return nil, errToken
		}
		if len(parts) != 3 {
			return nil, errParam("Unknown path components: %s", r.URL.Path)
		}
		rec.Edge = parts[2]
		return s.routeNumber(r, num, parts[2], body, rec)
	}
	if s.isWABA(id) {
		if !s.tokenFor(id, tok) {
			return nil, errToken
		}
		switch {
		case len(parts) == 2 && r.Method == http.MethodGet:
			rec.Edge = "analytics"
			return s.graphAnalytics(id, r.URL.Query().Get("fields"))
		case len(parts) == 3 && parts[2] == "message_templates" && r.Method == http.MethodPost:
			rec.Edge = "message_templates"
			return s.graphCreateTemplate(id, body)
		}
		return nil, errParam("Unknown path components: %s (%s)", r.URL.Path, r.Method)
	}
	if len(parts) == 2 && r.Method == http.MethodGet {
		if !s.tokenFor("", tok) {
			return nil, errToken
		}
		if m, ok := s.mediaInfo(id); ok {
			rec.Edge = "media"
			return m, nil
		}
	}
	if !s.tokenFor("", tok) {
		return nil, errToken
	}
	return nil, errObject(id)
}

func (s *Sim) routeNumber(r *http.Request, num *bizNumber, edge string, body []byte, rec *GraphRequest) (any, *graphError) {
	switch {
	case edge == "calls" && r.Method == http.MethodPost:
		if s.sipEnabled(num) {
			return nil, errGraph(http.StatusBadRequest, 131055, "Calling API is not supported when SIP is enabled for this phone number")
		}
		return s.graphCalls(r.Context(), num, body, rec)
	case edge == "messages" && r.Method == http.MethodPost:
		return s.graphMessages(num, body, rec)
	case edge == "call_permissions" && r.Method == http.MethodGet:
		q := r.URL.Query()
		rec.To, rec.Recipient = q.Get("user_wa_id"), q.Get("recipient")
		if gerr := s.checkRate(num, s.cfg.Clock()); gerr != nil {
			return nil, gerr
		}
		u, gerr := s.resolveUser(rec.To, rec.Recipient, "user_wa_id", "recipient")
		if gerr != nil {
			return nil, gerr
		}
		return s.permissionsView(num, u.key, s.cfg.Clock()), nil
	case edge == "settings" && r.Method == http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		return map[string]any{"calling": cloneJSON(num.settings)}, nil
	case edge == "settings" && r.Method == http.MethodPost:
		return s.graphSettings(num, body)
	}
	return nil, errParam("Unknown path components: /%s (%s)", edge, r.Method)
}

type callsRequest struct {
	MessagingProduct string       `json:"messaging_product"`
	Action           string       `json:"action"`
	CallID           string       `json:"call_id"`
	To               string       `json:"to"`
	Recipient        string       `json:"recipient"`
	Session          *session     `json:"session"`
	BizOpaque        string       `json:"biz_opaque_callback_data"`
	Recording        *featureOpts `json:"recording"`
	Transcription    *featureOpts `json:"transcription"`
}

var okResp = map[string]any{"messaging_product": "whatsapp", "success": true}

func (s *Sim) graphCalls(ctx context.Context, num *bizNumber, body []byte, rec *GraphRequest) (any, *graphError) {
	var req callsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, errParam("Invalid JSON body: %v", err)
	}
	rec.Action, rec.CallID, rec.To, rec.Recipient = req.Action, req.CallID, req.To, req.Recipient
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
		return s.graphConnect(ctx, num, req)
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
	if !ok || c.num != num {
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
	if req.Action == "pre_accept" && (req.Recording != nil || req.Transcription != nil) {
		return nil, errParam("recording and transcription are set on accept, not pre_accept")
	}
	if req.Action == "accept" {
		if c.Reached(Accepted) {
			// A retried accept (e.g. after an HTTP timeout): same answer → the
			// same success; a different answer is refused.
			if normSDP(c.remote()) != normSDP(req.Session.SDP) {
				return nil, errParam("Invalid parameter session.sdp: differs from the answer the call was accepted with")
			}
			return okResp, nil
		}
		if now := s.cfg.Clock(); now.Sub(c.ringAt) > s.cfg.AcceptTimeout {
			c.end(endInfo{by: "error:138007", code: 138007, message: "Call was not accepted in time"})
			return nil, errGraph(http.StatusInternalServerError, 138007, "Connect timeout: the call was not accepted in time")
		}
	}
	rec1, tr1, gerr := checkFeatures(req.Recording, req.Transcription)
	if gerr != nil {
		return nil, gerr
	}
	if gerr := c.applyAnswer(req.Session.SDP); gerr != nil {
		return nil, gerr
	}
	if req.Action == "pre_accept" {
		c.mark(PreAccepted)
		return okResp, nil
	}
	c.mu.Lock()
	c.bizOpaque, c.recording, c.transcript = req.BizOpaque, rec1, tr1
	c.mu.Unlock()
	if !c.startAccepted(s.cfg.Clock()) {
		return nil, errParam("Invalid parameter call_id: the call has already ended")
	}
	return okResp, nil
}

func (c *UserCall) remote() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteSDP
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
