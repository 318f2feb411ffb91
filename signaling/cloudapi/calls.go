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
	ActionPreAccept             = "pre_accept"
	ActionAccept                = "accept"
	ActionReject                = "reject"
	ActionTerminate             = "terminate"
	ActionConnect               = "connect"
	ActionSendPermissionRequest = "send_permission_request"
	ActionCallPermissions       = "call_permissions"
	ActionGetSettings           = "get_settings"
	ActionUpdateSettings        = "update_settings"
)

const messagingProduct = "whatsapp"

type session struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

// callsBody is POST /<phone-number-id>/calls.
type callsBody struct {
	MessagingProduct string   `json:"messaging_product"`
	To               string   `json:"to,omitempty"`
	Action           string   `json:"action"`
	CallID           string   `json:"call_id,omitempty"`
	Session          *session `json:"session,omitempty"`
	BizOpaque        string   `json:"biz_opaque_callback_data,omitempty"`
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
// characters, omitted when empty) is echoed in later webhooks. Retried when safe.
func (c *Client) Accept(ctx context.Context, callID, answerSDP, bizOpaque string) error {
	return c.answerAction(ctx, ActionAccept, callID, answerSDP, bizOpaque)
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
// with '+') with our SDP offer, and returns Meta's call id. It is retried only
// when the connection was refused before anything was sent; a failure after
// the request may have reached Meta wraps ErrOutcomeUnknown.
func (c *Client) Connect(ctx context.Context, to, offerSDP, bizOpaque string) (callID string, err error) {
	if err := firstErr(checkNumber("to", to), checkSDP(offerSDP), checkOpaque(bizOpaque)); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionConnect, err)
	}
	var ans connectAnswer
	err = c.do(ctx, request{
		action: ActionConnect, method: http.MethodPost, path: "calls", subject: maskPhone(to),
		body: callsBody{MessagingProduct: messagingProduct, To: to, Action: ActionConnect,
			Session: &session{SDPType: "offer", SDP: offerSDP}, BizOpaque: bizOpaque},
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
