package metasim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SentWebhook is one webhook the simulator delivered (after its last attempt).
type SentWebhook struct {
	Time     time.Time // Clock time of the first attempt
	Field    string    // "calls" or "messages" ("" for raw SendWebhook bodies)
	Body     []byte
	Status   int    // HTTP status of the last attempt (0 when it never got an answer)
	Err      string // transport error of the last attempt, if any
	Attempts int
}

// Sign returns the X-Hub-Signature-256 value for body: "sha256=<hex HMAC-SHA256>".
func (s *Sim) Sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(s.cfg.AppSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SendWebhook delivers body once, signed, to WebhookURL and returns the HTTP
// status. Tests use it to replay duplicates or reorder events. It is recorded
// in Webhooks.
func (s *Sim) SendWebhook(ctx context.Context, body []byte) (int, error) {
	status, err := s.post(ctx, body)
	wh := SentWebhook{Time: s.cfg.Clock(), Body: bytes.Clone(body), Status: status, Attempts: 1}
	if err != nil {
		wh.Err = err.Error()
	}
	s.recordWebhook(wh)
	return status, err
}

func (s *Sim) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("metasim: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", s.Sign(body))
	req.Header.Set("User-Agent", "facebookexternalua")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metasim: webhook post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *Sim) recordWebhook(wh SentWebhook) {
	s.mu.Lock()
	s.webhooks = append(s.webhooks, wh)
	s.mu.Unlock()
	result := "ok"
	switch {
	case wh.Err != "":
		result = "error"
	case wh.Status != http.StatusOK:
		result = "status"
	}
	field := wh.Field
	if field == "" {
		field = "raw"
	}
	s.metrics.Webhooks.WithLabelValues(field, result).Inc()
}

// Webhooks returns every webhook delivered so far, in order of completion.
func (s *Sim) Webhooks() []SentWebhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentWebhook, len(s.webhooks))
	copy(out, s.webhooks)
	return out
}

// outgoing is a queued webhook; done (may be nil) runs after the last attempt.
type outgoing struct {
	field string
	body  []byte
	done  func(status int)
}

// enqueue queues a webhook for in-order delivery. It never blocks.
func (s *Sim) enqueue(field string, value any, done func(int)) {
	body, err := json.Marshal(s.envelope(field, value))
	if err != nil { // our own types always marshal
		s.log.Error("metasim: marshal webhook", "err", err)
		return
	}
	s.qmu.Lock()
	if s.qclosed {
		s.qmu.Unlock()
		return
	}
	s.queue = append(s.queue, outgoing{field: field, body: body, done: done})
	s.qmu.Unlock()
	select {
	case s.qsignal <- struct{}{}:
	default:
	}
}

// deliverLoop sends queued webhooks one at a time, in order, retrying
// non-200 answers with exponential backoff. It ends when ctx is cancelled.
func (s *Sim) deliverLoop(ctx context.Context) {
	for {
		s.qmu.Lock()
		var item outgoing
		ok := len(s.queue) > 0
		if ok {
			item = s.queue[0]
			s.queue[0] = outgoing{}
			s.queue = s.queue[1:]
		}
		s.qmu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.qsignal:
				continue
			}
		}
		wh := SentWebhook{Time: s.cfg.Clock(), Field: item.field, Body: item.body}
		backoff := s.cfg.WebhookBackoff
		for attempt := 0; ; attempt++ {
			status, err := s.post(ctx, item.body)
			wh.Attempts++
			wh.Status, wh.Err = status, ""
			if err != nil {
				wh.Err = err.Error()
			}
			if (err == nil && status == http.StatusOK) || attempt >= s.cfg.WebhookRetries || ctx.Err() != nil {
				break
			}
			s.log.Warn("metasim: webhook not accepted, retrying", "status", status, "err", err, "attempt", attempt+1)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			backoff *= 2
		}
		s.recordWebhook(wh)
		if item.done != nil {
			item.done(wh.Status)
		}
	}
}

// --- envelope and values (Meta's wire format) ---

type envelope struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

type entry struct {
	ID      string   `json:"id"`
	Changes []change `json:"changes"`
}

type change struct {
	Field string `json:"field"`
	Value any    `json:"value"`
}

type metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

type contact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID   string `json:"wa_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

type session struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

type metaError struct {
	Code      int    `json:"code"`
	Title     string `json:"title,omitempty"`
	Message   string `json:"message"`
	ErrorData *struct {
		Details string `json:"details"`
	} `json:"error_data,omitempty"`
}

type callEvent struct {
	ID              string      `json:"id"`
	From            string      `json:"from,omitempty"`
	FromUserID      string      `json:"from_user_id,omitempty"`
	To              string      `json:"to,omitempty"`
	Event           string      `json:"event"`
	Timestamp       string      `json:"timestamp"`
	Direction       string      `json:"direction"`
	Session         *session    `json:"session,omitempty"`
	Status          string      `json:"status,omitempty"`
	StartTime       string      `json:"start_time,omitempty"`
	EndTime         string      `json:"end_time,omitempty"`
	Duration        *int64      `json:"duration,omitempty"`
	Errors          []metaError `json:"errors,omitempty"`
	DeeplinkPayload string      `json:"deeplink_payload,omitempty"`
	BizOpaque       string      `json:"biz_opaque_callback_data,omitempty"`
}

type callStatus struct {
	ID          string `json:"id"`
	Timestamp   string `json:"timestamp"`
	Type        string `json:"type"`
	Status      string `json:"status"`
	RecipientID string `json:"recipient_id"`
	BizOpaque   string `json:"biz_opaque_callback_data,omitempty"`
}

type callsValue struct {
	MessagingProduct string       `json:"messaging_product"`
	Metadata         metadata     `json:"metadata"`
	Contacts         []contact    `json:"contacts,omitempty"`
	Calls            []callEvent  `json:"calls,omitempty"`
	Statuses         []callStatus `json:"statuses,omitempty"`
}

type permissionReply struct {
	Response            string `json:"response"`
	IsPermanent         bool   `json:"is_permanent"`
	ExpirationTimestamp int64  `json:"expiration_timestamp,omitempty"`
	ResponseSource      string `json:"response_source"`
}

type inboundMessage struct {
	From        string `json:"from"`
	ID          string `json:"id"`
	Timestamp   string `json:"timestamp"`
	Type        string `json:"type"`
	Interactive struct {
		Type                string          `json:"type"`
		CallPermissionReply permissionReply `json:"call_permission_reply"`
	} `json:"interactive"`
	Context *struct {
		From string `json:"from"`
		ID   string `json:"id"`
	} `json:"context,omitempty"`
}

type messagesValue struct {
	MessagingProduct string           `json:"messaging_product"`
	Metadata         metadata         `json:"metadata"`
	Contacts         []contact        `json:"contacts"`
	Messages         []inboundMessage `json:"messages"`
}

func (s *Sim) envelope(field string, value any) envelope {
	return envelope{Object: "whatsapp_business_account", Entry: []entry{{
		ID: s.cfg.WABAID, Changes: []change{{Field: field, Value: value}},
	}}}
}

func (s *Sim) meta() metadata {
	return metadata{DisplayPhoneNumber: s.cfg.DisplayPhoneNumber, PhoneNumberID: s.cfg.PhoneNumberID}
}

func epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func newContact(name, waID, userID string) contact {
	var c contact
	c.Profile.Name = name
	c.WaID, c.UserID = waID, userID
	return c
}

// sendPermissionReply queues a messages webhook carrying a call_permission_reply.
func (s *Sim) sendPermissionReply(user, name string, r permissionReply, contextID string) {
	now := s.cfg.Clock()
	msg := inboundMessage{From: user, ID: newID("wamid."), Timestamp: epoch(now), Type: "interactive"}
	msg.Interactive.Type = "call_permission_reply"
	msg.Interactive.CallPermissionReply = r
	if contextID != "" {
		msg.Context = &struct {
			From string `json:"from"`
			ID   string `json:"id"`
		}{From: s.cfg.DisplayPhoneNumber, ID: contextID}
	}
	s.enqueue("messages", messagesValue{
		MessagingProduct: "whatsapp", Metadata: s.meta(),
		Contacts: []contact{newContact(name, user, "")},
		Messages: []inboundMessage{msg},
	}, nil)
}

// VerifySubscription performs Meta's subscription check against WebhookURL
// (GET ?hub.mode=subscribe&hub.verify_token=VerifyToken&hub.challenge=C) and
// reports the status and whether the body echoed the challenge.
func (s *Sim) VerifySubscription(ctx context.Context) (status int, echoed bool, err error) {
	challenge := newID("")[:16]
	u := s.cfg.WebhookURL + "?hub.mode=subscribe&hub.verify_token=" + url.QueryEscape(s.cfg.VerifyToken) + "&hub.challenge=" + challenge
	if strings.Contains(s.cfg.WebhookURL, "?") {
		u = strings.Replace(u, "?hub.mode", "&hub.mode", 1)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, fmt.Errorf("metasim: verify request: %w", err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("metasim: verify: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(body) == challenge, nil
}
