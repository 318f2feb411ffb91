package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits checked before sending.
const (
	MaxBizOpaqueLen   = 512      // biz_opaque_callback_data, characters
	MaxPermissionText = 1024     // interactive body text, characters
	maxSDPBytes       = 64 << 10 // far above any audio SDP
	maxCallIDLen      = 512
)

// Action label values (metrics, logs).
const (
	ActionPreAccept              = "pre_accept"
	ActionAccept                 = "accept"
	ActionReject                 = "reject"
	ActionTerminate              = "terminate"
	ActionConnect                = "connect"
	ActionSendPermissionRequest  = "send_permission_request"
	ActionCallPermissions        = "call_permissions"
	ActionGetSettings            = "get_settings"
	ActionUpdateSettings         = "update_settings"
	ActionSendPermissionTemplate = "send_permission_template"
	ActionCreateTemplate         = "create_template"
	ActionSendCallButton         = "send_call_button"
	ActionCallAnalytics          = "call_analytics"
	ActionPricingAnalytics       = "pricing_analytics"
	ActionGetPhoneNumber         = "get_phone_number"
)

const messagingProduct = "whatsapp"

type session struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

// callsBody is POST /<phone-number-id>/calls.
type callsBody struct {
	MessagingProduct string    `json:"messaging_product"`
	To               string    `json:"to,omitempty"`
	Recipient        string    `json:"recipient,omitempty"`
	Action           string    `json:"action"`
	CallID           string    `json:"call_id,omitempty"`
	Session          *session  `json:"session,omitempty"`
	BizOpaque        string    `json:"biz_opaque_callback_data,omitempty"`
	Recording        *MediaOpt `json:"recording,omitempty"`
	Transcription    *MediaOpt `json:"transcription,omitempty"`
}

// successAnswer is {"messaging_product":"whatsapp","success":true}.
type successAnswer struct {
	Success bool `json:"success"`
}

func (a *successAnswer) check() error {
	if !a.Success {
		return errors.New("no \"success\":true")
	}
	return nil
}

// connectAnswer is {"messaging_product":"whatsapp","calls":[{"id":"wacid..."}]}.
type connectAnswer struct {
	Calls []struct {
		ID string `json:"id"`
	} `json:"calls"`
}

func (a *connectAnswer) check() error {
	if len(a.Calls) == 0 || a.Calls[0].ID == "" {
		return errors.New("no calls[0].id")
	}
	return nil
}

// PreAccept sends our SDP answer before an agent answers, so media connects
// while agents ring. Retried when safe.
func (c *Client) PreAccept(ctx context.Context, callID, answerSDP string) error {
	return c.answerAction(ctx, ActionPreAccept, callID, answerSDP, "")
}

// Accept sends the same SDP answer when an agent answers; bizOpaque (≤ 512
// characters, omitted when empty) is echoed in later webhooks. It is
// AcceptWith without recording or transcription.
func (c *Client) Accept(ctx context.Context, callID, answerSDP, bizOpaque string) error {
	return c.AcceptWith(ctx, AcceptRequest{CallID: callID, AnswerSDP: answerSDP, BizOpaque: bizOpaque})
}

// AcceptRequest is POST /calls action=accept.
type AcceptRequest struct {
	CallID    string
	AnswerSDP string // must equal the pre_accept SDP
	BizOpaque string // ≤ 512 characters, omitted when empty
	// Recording and Transcription opt the call in (or out) of Meta's
	// recording/transcription; nil omits them. Only connect and accept
	// carry them, never pre_accept.
	Recording     *MediaOpt
	Transcription *MediaOpt
}

// AcceptWith accepts a user-initiated call. It is retried when safe (network
// error, timeout, 429, 5xx) with one twist: when an earlier attempt may have
// reached Meta (it timed out or got a 5xx after sending) and a later one is
// refused as "already accepted/in progress" (138003, or any error whose text
// says the call is already accepted, answered or in progress), the first
// attempt did accept the call: that answer is success, not failure. Treating
// it as a failure would make the controller terminate a call the user is
// already talking on. 138007 (connect timeout, HTTP 500) is never repeated:
// Meta has given up on the call, a repeat cannot revive it.
func (c *Client) AcceptWith(ctx context.Context, r AcceptRequest) error {
	if err := firstErr(checkCallID(r.CallID), checkSDP(r.AnswerSDP), checkOpaque(r.BizOpaque),
		r.Recording.validate("recording"), r.Transcription.validate("transcription")); err != nil {
		return fmt.Errorf("cloudapi: %s: %w", ActionAccept, err)
	}
	return c.do(ctx, request{
		action: ActionAccept, method: http.MethodPost, path: "calls", safe: true, alreadyDone: alreadyAccepted,
		body: callsBody{MessagingProduct: messagingProduct, Action: ActionAccept, CallID: r.CallID,
			Session: &session{SDPType: "answer", SDP: r.AnswerSDP}, BizOpaque: r.BizOpaque,
			Recording: r.Recording, Transcription: r.Transcription},
	}, &successAnswer{})
}

// alreadyAccepted recognises Meta's refusal of a repeated accept. Meta does
// not document the answer to a second accept of the same call; 138003 ("a
// call with this user is already ongoing") is the documented code closest to
// it, and any error whose message or details say "already accepted /
// answered / in progress / ongoing" is taken as the same answer.
func alreadyAccepted(e *Error) bool {
	if e.Code == CodeCallInProgress {
		return true
	}
	if e.HTTPStatus >= 500 || e.Code == 0 {
		return false
	}
	text := strings.ToLower(e.Message + " " + e.Details)
	for _, s := range []string{"already accepted", "already been accepted", "already answered",
		"already in progress", "already ongoing", "already connected"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

func (c *Client) answerAction(ctx context.Context, action, callID, sdp, opaque string) error {
	if err := firstErr(checkCallID(callID), checkSDP(sdp), checkOpaque(opaque)); err != nil {
		return fmt.Errorf("cloudapi: %s: %w", action, err)
	}
	return c.do(ctx, request{
		action: action, method: http.MethodPost, path: "calls", safe: true,
		body: callsBody{MessagingProduct: messagingProduct, Action: action, CallID: callID,
			Session: &session{SDPType: "answer", SDP: sdp}, BizOpaque: opaque},
	}, &successAnswer{})
}

// Reject declines a user-initiated call. Retried when safe.
func (c *Client) Reject(ctx context.Context, callID string) error {
	return c.simpleAction(ctx, ActionReject, callID)
}

// Terminate ends a call; always send it for calls we end. Retried when safe.
func (c *Client) Terminate(ctx context.Context, callID string) error {
	return c.simpleAction(ctx, ActionTerminate, callID)
}

func (c *Client) simpleAction(ctx context.Context, action, callID string) error {
	if err := checkCallID(callID); err != nil {
		return fmt.Errorf("cloudapi: %s: %w", action, err)
	}
	return c.do(ctx, request{
		action: action, method: http.MethodPost, path: "calls", safe: true,
		body: callsBody{MessagingProduct: messagingProduct, Action: action, CallID: callID},
	}, &successAnswer{})
}

// Connect places a business-initiated call to `to` (wa_id digits or E.164
// with '+') with our SDP offer, and returns Meta's call id. It is ConnectUser
// with a phone number and no recording or transcription.
func (c *Client) Connect(ctx context.Context, to, offerSDP, bizOpaque string) (callID string, err error) {
	if err := checkNumber("to", to); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionConnect, err)
	}
	return c.ConnectUser(ctx, ConnectRequest{User: User{Phone: to}, OfferSDP: offerSDP, BizOpaque: bizOpaque})
}

// ConnectRequest is POST /calls action=connect.
type ConnectRequest struct {
	User          User   // "to" and/or "recipient"
	OfferSDP      string // our SDP offer
	BizOpaque     string // ≤ 512 characters, omitted when empty
	Recording     *MediaOpt
	Transcription *MediaOpt
}

// ConnectUser places a business-initiated call and returns Meta's call id.
// It is retried only when the connection was refused before anything was
// sent (a repeat could place a second call); a failure after the request may
// have reached Meta wraps ErrOutcomeUnknown: reconcile from webhooks.
func (c *Client) ConnectUser(ctx context.Context, r ConnectRequest) (callID string, err error) {
	if err := firstErr(r.User.Validate(), checkSDP(r.OfferSDP), checkOpaque(r.BizOpaque),
		r.Recording.validate("recording"), r.Transcription.validate("transcription")); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionConnect, err)
	}
	var ans connectAnswer
	err = c.do(ctx, request{
		action: ActionConnect, method: http.MethodPost, path: "calls", subject: r.User.String(),
		body: callsBody{MessagingProduct: messagingProduct, To: r.User.Phone, Recipient: r.User.BSUID,
			Action: ActionConnect, Session: &session{SDPType: "offer", SDP: r.OfferSDP}, BizOpaque: r.BizOpaque,
			Recording: r.Recording, Transcription: r.Transcription},
	}, &ans)
	if err != nil {
		return "", err
	}
	return ans.Calls[0].ID, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func checkCallID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty call id", ErrBadInput)
	}
	if len(id) > maxCallIDLen {
		return fmt.Errorf("%w: call id longer than %d", ErrBadInput, maxCallIDLen)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: call id contains whitespace or control characters", ErrBadInput)
		}
	}
	return nil
}

func checkSDP(sdp string) error {
	if !strings.HasPrefix(sdp, "v=0") {
		return fmt.Errorf("%w: SDP must start with \"v=0\"", ErrBadInput)
	}
	if len(sdp) > maxSDPBytes {
		return fmt.Errorf("%w: SDP over %d bytes", ErrBadInput, maxSDPBytes)
	}
	if !strings.Contains(sdp, "m=audio") {
		return fmt.Errorf("%w: SDP has no audio m-line", ErrBadInput)
	}
	return nil
}

func checkOpaque(s string) error {
	if n := utf8.RuneCountInString(s); n > MaxBizOpaqueLen {
		return fmt.Errorf("%w: biz_opaque_callback_data is %d characters, limit %d", ErrBadInput, n, MaxBizOpaqueLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: biz_opaque_callback_data is not UTF-8", ErrBadInput)
	}
	return nil
}

// checkNumber accepts a wa_id (digits) or E.164 ("+" and digits), 6-15 digits.
func checkNumber(what, n string) error {
	d := strings.TrimPrefix(n, "+")
	if len(d) < 6 || len(d) > 15 || d[0] == '0' {
		return fmt.Errorf("%w: %s must be a wa_id or E.164 number (6-15 digits)", ErrBadInput, what)
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return fmt.Errorf("%w: %s must be a wa_id or E.164 number (digits only)", ErrBadInput, what)
		}
	}
	return nil
}
