package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"
)

// messageBody is POST /<phone-number-id>/messages.
type messageBody struct {
	MessagingProduct string        `json:"messaging_product"`
	RecipientType    string        `json:"recipient_type"`
	To               string        `json:"to,omitempty"`
	Recipient        string        `json:"recipient,omitempty"`
	Type             string        `json:"type"`
	Interactive      *interactive  `json:"interactive,omitempty"`
	Template         *templateSend `json:"template,omitempty"`
}

type interactive struct {
	Type   string            `json:"type"`
	Body   *textObj          `json:"body,omitempty"`
	Action interactiveAction `json:"action"`
}

type textObj struct {
	Text string `json:"text"`
}

type interactiveAction struct {
	Name       string           `json:"name"`
	Parameters *voiceCallParams `json:"parameters,omitempty"`
}

type voiceCallParams struct {
	DisplayText string `json:"display_text"`
	TTLMinutes  int    `json:"ttl_minutes"`
	Payload     string `json:"payload,omitempty"`
}

type templateSend struct {
	Name       string              `json:"name"`
	Language   templateLanguage    `json:"language"`
	Components []templateComponent `json:"components,omitempty"`
}

type templateLanguage struct {
	Code string `json:"code"`
}

type templateComponent struct {
	Type       string          `json:"type"`
	Parameters []templateParam `json:"parameters"`
}

type templateParam struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type messagesAnswer struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

func (a *messagesAnswer) check() error {
	if len(a.Messages) == 0 || a.Messages[0].ID == "" {
		return errors.New("no messages[0].id")
	}
	return nil
}

func newMessage(u User, typ string) messageBody {
	return messageBody{MessagingProduct: messagingProduct, RecipientType: "individual", To: u.Phone, Recipient: u.BSUID, Type: typ}
}

// sendMessage posts a message. Like connect it is retried only when the
// connection was refused before sending; otherwise a failure after the
// request may have reached Meta wraps ErrOutcomeUnknown (a repeat could
// deliver, and bill, the message twice).
func (c *Client) sendMessage(ctx context.Context, action string, u User, b messageBody) (string, error) {
	var ans messagesAnswer
	if err := c.do(ctx, request{action: action, method: http.MethodPost, path: "messages", subject: u.String(), body: b}, &ans); err != nil {
		return "", err
	}
	return ans.Messages[0].ID, nil
}

// SendCallPermissionRequest sends the free-form interactive
// call_permission_request message to a phone number (valid inside the 24 h
// customer service window) and returns its wamid. It is
// SendPermissionRequest with a phone number and a required body.
func (c *Client) SendCallPermissionRequest(ctx context.Context, to, bodyText string) (messageID string, err error) {
	if err := checkNumber("to", to); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionSendPermissionRequest, err)
	}
	if strings.TrimSpace(bodyText) == "" {
		return "", fmt.Errorf("cloudapi: %s: %w: body text must be 1-%d characters of UTF-8",
			ActionSendPermissionRequest, ErrBadInput, MaxPermissionText)
	}
	return c.SendPermissionRequest(ctx, User{Phone: to}, bodyText)
}

// SendPermissionRequest sends the free-form interactive
// call_permission_request (inside the customer service window only; outside
// it use SendPermissionTemplate) to a number and/or BSUID:
// {"type":"interactive","interactive":{"type":"call_permission_request",
// "action":{"name":"call_permission_request"},"body":{"text":…}}}. The body
// is optional (advised); empty omits it. Returns the wamid. Not repeated once
// it may have reached Meta (ErrOutcomeUnknown).
func (c *Client) SendPermissionRequest(ctx context.Context, u User, bodyText string) (messageID string, err error) {
	if err := firstErr(u.Validate(), checkText("body text", bodyText, MaxPermissionText, false)); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionSendPermissionRequest, err)
	}
	b := newMessage(u, "interactive")
	b.Interactive = &interactive{Type: "call_permission_request", Action: interactiveAction{Name: "call_permission_request"}}
	if bodyText != "" {
		b.Interactive.Body = &textObj{Text: bodyText}
	}
	return c.sendMessage(ctx, ActionSendPermissionRequest, u, b)
}

// TemplateRef names an approved message template: its name and language
// code ("call_permission", "en_US").
type TemplateRef struct {
	Name     string
	Language string
}

func (r TemplateRef) String() string { return r.Name + ":" + r.Language }

var (
	templateNameRE = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	languageRE     = regexp.MustCompile(`^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$`)
)

// Validate checks the template name (lower-case letters, digits and
// underscores, ≤ 512) and the language code ("en", "en_US", "pt_BR", "es_419").
func (r TemplateRef) Validate() error {
	if !templateNameRE.MatchString(r.Name) {
		return fmt.Errorf("%w: template name %q must be lower-case letters, digits and underscores", ErrBadInput, r.Name)
	}
	if !languageRE.MatchString(r.Language) {
		return fmt.Errorf("%w: template language %q must be a code like en or en_US", ErrBadInput, r.Language)
	}
	return nil
}

// ParseTemplateRef reads a setting "name:language", e.g.
// "call_permission:en_US".
func ParseTemplateRef(s string) (TemplateRef, error) {
	name, lang, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return TemplateRef{}, fmt.Errorf("%w: template %q must be written name:language, e.g. call_permission:en_US", ErrBadInput, s)
	}
	r := TemplateRef{Name: name, Language: lang}
	if err := r.Validate(); err != nil {
		return TemplateRef{}, fmt.Errorf("template setting %q: %w", s, err)
	}
	return r, nil
}

// MaxTemplateParam bounds one body parameter, in characters.
const MaxTemplateParam = 1024

// SendPermissionTemplate sends an approved call-permission template (a
// MARKETING or UTILITY template with a call_permission_request component;
// the only way to ask outside the customer service window):
// {"messaging_product":"whatsapp","recipient_type":"individual","to"|"recipient":…,
// "type":"template","template":{"name":…,"language":{"code":…},
// "components":[{"type":"body","parameters":[{"type":"text","text":…}…]}]}}.
// With no bodyParams the components are omitted. Returns the wamid; not
// repeated once it may have reached Meta (ErrOutcomeUnknown).
func (c *Client) SendPermissionTemplate(ctx context.Context, u User, t TemplateRef, bodyParams []string) (messageID string, err error) {
	if err := firstErr(u.Validate(), t.Validate()); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionSendPermissionTemplate, err)
	}
	ts := &templateSend{Name: t.Name, Language: templateLanguage{Code: t.Language}}
	if len(bodyParams) > 0 {
		comp := templateComponent{Type: "body"}
		for i, p := range bodyParams {
			if err := checkText(fmt.Sprintf("body parameter %d", i+1), p, MaxTemplateParam, true); err != nil {
				return "", fmt.Errorf("cloudapi: %s: %w", ActionSendPermissionTemplate, err)
			}
			comp.Parameters = append(comp.Parameters, templateParam{Type: "text", Text: p})
		}
		ts.Components = []templateComponent{comp}
	}
	b := newMessage(u, "template")
	b.Template = ts
	return c.sendMessage(ctx, ActionSendPermissionTemplate, u, b)
}

// checkText checks UTF-8, length and (when required) non-blank text.
func checkText(what, s string, limit int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: %s is empty", ErrBadInput, what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrBadInput, what)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return fmt.Errorf("%w: %s is %d characters, limit %d", ErrBadInput, what, n, limit)
	}
	return nil
}

// CallButton is the interactive voice_call message (a "Call Now" button
// that calls our number; inside the customer service window).
type CallButton struct {
	BodyText    string // required
	DisplayText string // ≤ 20 characters; default "Call Now"
	TTLMinutes  int    // 1-43200; default 10080 (7 days)
	Payload     string // ≤ 512 characters; comes back as cta_payload on the call's webhooks
}

// Call button limits and defaults from the reference.
const (
	MaxCallButtonDisplayText = 20
	DefaultCallButtonText    = "Call Now"
	DefaultCallButtonTTL     = 10080
	MaxCallButtonTTL         = 43200
	MaxCallButtonPayload     = 512
	MaxCallButtonBody        = 1024
)

// SendCallButton sends an interactive voice_call message:
// {"type":"interactive","interactive":{"type":"voice_call","body":{"text":…},
// "action":{"name":"voice_call","parameters":{"display_text","ttl_minutes","payload"}}}}.
// Validated before sending; old clients get 131026, unsupported sender
// countries 131009. Not repeated once it may have reached Meta.
func (c *Client) SendCallButton(ctx context.Context, u User, b CallButton) (messageID string, err error) {
	if b.DisplayText == "" {
		b.DisplayText = DefaultCallButtonText
	}
	if b.TTLMinutes == 0 {
		b.TTLMinutes = DefaultCallButtonTTL
	}
	err = firstErr(u.Validate(),
		checkText("call button body text", b.BodyText, MaxCallButtonBody, true),
		checkText("call button display_text", b.DisplayText, MaxCallButtonDisplayText, true),
		checkText("call button payload", b.Payload, MaxCallButtonPayload, false))
	if err == nil && (b.TTLMinutes < 1 || b.TTLMinutes > MaxCallButtonTTL) {
		err = fmt.Errorf("%w: call button ttl_minutes %d must be 1-%d", ErrBadInput, b.TTLMinutes, MaxCallButtonTTL)
	}
	if err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionSendCallButton, err)
	}
	m := newMessage(u, "interactive")
	m.Interactive = &interactive{Type: "voice_call", Body: &textObj{Text: b.BodyText},
		Action: interactiveAction{Name: "voice_call", Parameters: &voiceCallParams{
			DisplayText: b.DisplayText, TTLMinutes: b.TTLMinutes, Payload: b.Payload}}}
	return c.sendMessage(ctx, ActionSendCallButton, u, m)
}
