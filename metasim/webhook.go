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
	Fields   []string // field of every change in the POST (batches carry several)
	Keys     []string // event or status name of every change ("connect", "RINGING", "sent", ...)
	// Duplicate: the POST carries a change delivered before (Adversary.Duplicate).
	Duplicate bool
	// TimedOut counts 200 answers treated as timeouts and retried (Adversary.RetryProcessed).
	TimedOut int
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
	close(s.whNotify)
	s.whNotify = make(chan struct{})
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

// WaitWebhook returns the first delivered webhook (past or future) for which
// match returns true, or ctx's error.
func (s *Sim) WaitWebhook(ctx context.Context, match func(SentWebhook) bool) (SentWebhook, error) {
	seen := 0
	for {
		s.mu.Lock()
		for ; seen < len(s.webhooks); seen++ {
			if w := s.webhooks[seen]; match(w) {
				s.mu.Unlock()
				return w, nil
			}
		}
		ch := s.whNotify
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return SentWebhook{}, fmt.Errorf("metasim: wait webhook: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Webhooks returns every webhook delivered so far, in order of completion.
func (s *Sim) Webhooks() []SentWebhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentWebhook, len(s.webhooks))
	copy(out, s.webhooks)
	return out
}

// pending is one queued change; done (may be nil) runs after its POST's last attempt.
type pending struct {
	waba      string
	field     string
	key       string // event or status name (Adversary.Hold)
	value     json.RawMessage
	notBefore time.Time // real time
	dup       bool
	done      func(status int)
}

// enqueue queues one change of number num for delivery. key names the event
// or status it carries. It never blocks.
func (s *Sim) enqueue(num *bizNumber, field, key string, value any, done func(int)) {
	raw, err := s.drift(value)
	if err != nil { // our own types always marshal
		s.log.Error("metasim: webhook value", "err", err)
		return
	}
	adv := s.Adversary()
	p := pending{waba: num.WABAID, field: field, key: key, value: raw, done: done, notBefore: time.Now()}
	if d, ok := adv.Hold[key]; ok {
		p.notBefore = p.notBefore.Add(d)
		s.metrics.Adversary.WithLabelValues("held").Inc()
	}
	if s.chance(adv.Reorder) {
		p.notBefore = p.notBefore.Add(s.randDur(adv.ReorderDelay))
		s.metrics.Adversary.WithLabelValues("held").Inc()
	}
	s.push(p)
}

func (s *Sim) push(p pending) {
	s.qmu.Lock()
	if s.qclosed {
		s.qmu.Unlock()
		return
	}
	s.queue = append(s.queue, p)
	s.qmu.Unlock()
	select {
	case s.qsignal <- struct{}{}:
	default:
	}
}

// take removes up to max ready changes (in queue order) and returns them, or
// how long until the next one is ready (0: queue empty).
func (s *Sim) take(max int) ([]pending, time.Duration) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	now := time.Now()
	var (
		out  []pending
		kept = s.queue[:0]
		wait time.Duration
	)
	for _, p := range s.queue {
		if len(out) < max && !p.notBefore.After(now) {
			out = append(out, p)
			continue
		}
		if d := p.notBefore.Sub(now); d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
		kept = append(kept, p)
	}
	for i := len(kept); i < len(s.queue); i++ {
		s.queue[i] = pending{}
	}
	s.queue = kept
	if len(out) == 0 && wait == 0 && len(kept) > 0 {
		wait = time.Millisecond
	}
	return out, wait
}

// sleep waits d (or a queue signal when wake is set); false when ctx ends.
func (s *Sim) sleep(ctx context.Context, d time.Duration, wake bool) bool {
	var tc <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		tc = t.C
	}
	var sig chan struct{}
	if wake {
		sig = s.qsignal
	}
	select {
	case <-ctx.Done():
		return false
	case <-tc:
	case <-sig:
	}
	return true
}

// deliverLoop sends queued changes, alone or batched, retrying non-200
// answers with exponential backoff (decreasing frequency, WebhookRetries
// bounded). It ends when ctx is cancelled.
func (s *Sim) deliverLoop(ctx context.Context) {
	for ctx.Err() == nil {
		adv := s.Adversary()
		max := 1
		if adv.BatchMax > 1 {
			max = adv.BatchMax
		}
		batch, wait := s.take(max)
		if len(batch) == 0 {
			if !s.sleep(ctx, wait, true) {
				return
			}
			continue
		}
		if max > 1 && len(batch) < max && adv.BatchWindow > 0 {
			if !s.sleep(ctx, adv.BatchWindow, false) {
				return
			}
			more, _ := s.take(max - len(batch))
			batch = append(batch, more...)
		}
		s.deliver(ctx, batch, adv)
	}
}

func (s *Sim) deliver(ctx context.Context, batch []pending, adv Adversary) {
	body := buildEnvelope(batch)
	if len(batch) > 1 {
		s.metrics.Adversary.WithLabelValues("batched").Inc()
	}
	wh := SentWebhook{Time: s.cfg.Clock(), Field: batch[0].field, Body: body}
	for _, p := range batch {
		wh.Fields = append(wh.Fields, p.field)
		wh.Keys = append(wh.Keys, p.key)
		wh.Duplicate = wh.Duplicate || p.dup
	}
	backoff := s.cfg.WebhookBackoff
	for attempt := 0; ; attempt++ {
		status, err := s.post(ctx, body)
		wh.Attempts++
		wh.Status, wh.Err = status, ""
		if err != nil {
			wh.Err = err.Error()
		}
		ok := err == nil && status == http.StatusOK
		if ok && attempt < s.cfg.WebhookRetries && s.chance(adv.RetryProcessed) {
			ok = false
			wh.TimedOut++
			s.metrics.Adversary.WithLabelValues("retried_after_200").Inc()
			s.log.Info("metasim: adversary: treating a 200 as a timeout, delivering again", "attempt", attempt+1)
		}
		if ok || attempt >= s.cfg.WebhookRetries || ctx.Err() != nil {
			break
		}
		s.log.Warn("metasim: webhook not accepted, retrying", "status", status, "err", err, "attempt", attempt+1)
		if !s.sleep(ctx, backoff, false) {
			break
		}
		backoff *= 2
	}
	s.recordWebhook(wh)
	for _, p := range batch {
		if p.done != nil {
			p.done(wh.Status)
		}
		if !p.dup && s.chance(adv.Duplicate) {
			d := p
			d.dup, d.done = true, nil
			d.notBefore = time.Now().Add(s.randDur(adv.ReorderDelay))
			s.push(d)
			s.metrics.Adversary.WithLabelValues("duplicated").Inc()
		}
	}
}

// buildEnvelope groups changes by WABA (entries in order of first appearance).
func buildEnvelope(batch []pending) []byte {
	env := envelope{Object: "whatsapp_business_account"}
	idx := map[string]int{}
	for _, p := range batch {
		i, ok := idx[p.waba]
		if !ok {
			i = len(env.Entry)
			idx[p.waba] = i
			env.Entry = append(env.Entry, entry{ID: p.waba})
		}
		env.Entry[i].Changes = append(env.Entry[i].Changes, change{Field: p.field, Value: p.value})
	}
	b, _ := json.Marshal(env) // RawMessage values are valid JSON
	return b
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
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

type profile struct {
	Name     string `json:"name,omitempty"`
	Username string `json:"username,omitempty"`
}

type contact struct {
	Profile      profile `json:"profile"`
	WaID         string  `json:"wa_id,omitempty"`
	UserID       string  `json:"user_id,omitempty"`
	ParentUserID string  `json:"parent_user_id,omitempty"`
}

type session struct {
	SDPType string `json:"sdp_type"`
	SDP     string `json:"sdp"`
}

type errorData struct {
	Details string `json:"details"`
}

type metaError struct {
	Code      int        `json:"code"`
	Title     string     `json:"title,omitempty"`
	Message   string     `json:"message"`
	Href      string     `json:"href,omitempty"`
	ErrorData *errorData `json:"error_data,omitempty"`
}

type mediaRef struct {
	ID       string `json:"id"`
	SHA256   string `json:"sha256"`
	MimeType string `json:"mime_type"`
	URL      string `json:"url"`
}

type callEvent struct {
	ID               string      `json:"id"`
	From             string      `json:"from,omitempty"`
	FromUserID       string      `json:"from_user_id,omitempty"`
	FromParentUserID string      `json:"from_parent_user_id,omitempty"`
	To               string      `json:"to,omitempty"`
	ToUserID         string      `json:"to_user_id,omitempty"`
	ToParentUserID   string      `json:"to_parent_user_id,omitempty"`
	Event            string      `json:"event"`
	Timestamp        string      `json:"timestamp"`
	Direction        string      `json:"direction,omitempty"`
	Session          *session    `json:"session,omitempty"`
	Status           string      `json:"status,omitempty"`
	StartTime        string      `json:"start_time,omitempty"`
	EndTime          string      `json:"end_time,omitempty"`
	Duration         *int64      `json:"duration,omitempty"`
	Errors           []metaError `json:"errors,omitempty"` // only with Adversary.ExtraErrorsInCall
	DeeplinkPayload  string      `json:"deeplink_payload,omitempty"`
	CTAPayload       string      `json:"cta_payload,omitempty"`
	BizOpaque        string      `json:"biz_opaque_callback_data,omitempty"`
	CallRecording    *struct {
		Type  string   `json:"type"`
		Audio mediaRef `json:"audio"`
	} `json:"call_recording,omitempty"`
	CallTranscript *struct {
		Document mediaRef `json:"document"`
	} `json:"call_transcript,omitempty"`
}

type callStatus struct {
	ID                    string `json:"id"`
	Timestamp             string `json:"timestamp"`
	Type                  string `json:"type"`
	Status                string `json:"status"`
	RecipientID           string `json:"recipient_id,omitempty"`
	RecipientUserID       string `json:"recipient_user_id,omitempty"`
	RecipientParentUserID string `json:"recipient_parent_user_id,omitempty"`
	BizOpaque             string `json:"biz_opaque_callback_data,omitempty"`
}

type callsValue struct {
	MessagingProduct string       `json:"messaging_product"`
	Metadata         metadata     `json:"metadata"`
	Contacts         []contact    `json:"contacts,omitempty"`
	Calls            []callEvent  `json:"calls,omitempty"`
	Statuses         []callStatus `json:"statuses,omitempty"`
	Errors           []metaError  `json:"errors,omitempty"` // terminate errors: a sibling of calls
}

type permissionReply struct {
	Response            string `json:"response"`
	IsPermanent         bool   `json:"is_permanent"`
	ExpirationTimestamp string `json:"expiration_timestamp,omitempty"`
	ResponseSource      string `json:"response_source"`
}

type msgContext struct {
	From string `json:"from,omitempty"`
	ID   string `json:"id"`
}

type inboundMessage struct {
	From             string      `json:"from,omitempty"`
	FromUserID       string      `json:"from_user_id,omitempty"`
	FromParentUserID string      `json:"from_parent_user_id,omitempty"`
	ID               string      `json:"id"`
	Timestamp        string      `json:"timestamp"`
	Type             string      `json:"type,omitempty"` // absent on call_permission_reply (Meta's sample)
	Context          *msgContext `json:"context,omitempty"`
	Interactive      *struct {
		Type                string          `json:"type"`
		CallPermissionReply permissionReply `json:"call_permission_reply"`
	} `json:"interactive,omitempty"`
	Text *struct {
		Body string `json:"body"`
	} `json:"text,omitempty"`
	System *systemMessage `json:"system,omitempty"`
}

type systemMessage struct {
	Body                 string `json:"body"`
	Type                 string `json:"type"`
	WaID                 string `json:"wa_id,omitempty"`
	UserID               string `json:"user_id,omitempty"`
	PreviousUserID       string `json:"previous_user_id,omitempty"`
	PreviousParentUserID string `json:"previous_parent_user_id,omitempty"`
	ParentUserID         string `json:"parent_user_id,omitempty"`
}

type pricingObj struct {
	Billable     bool   `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Type         string `json:"type"`
	Category     string `json:"category"`
}

type msgStatus struct {
	ID                    string      `json:"id"`
	Status                string      `json:"status"`
	Timestamp             string      `json:"timestamp"`
	RecipientID           string      `json:"recipient_id,omitempty"`
	RecipientUserID       string      `json:"recipient_user_id,omitempty"`
	RecipientParentUserID string      `json:"recipient_parent_user_id,omitempty"`
	Pricing               *pricingObj `json:"pricing,omitempty"`
	Errors                []metaError `json:"errors,omitempty"`
}

type messagesValue struct {
	MessagingProduct string           `json:"messaging_product"`
	Metadata         metadata         `json:"metadata"`
	Contacts         []contact        `json:"contacts,omitempty"`
	Messages         []inboundMessage `json:"messages,omitempty"`
	Statuses         []msgStatus      `json:"statuses,omitempty"`
}

func epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// sendPermissionReply queues a messages webhook carrying a call_permission_reply
// in Meta's shape: no message-level type, interactive.type, context.id when
// contextID is set.
func (s *Sim) sendPermissionReply(num *bizNumber, u userView, r permissionReply, contextID string) {
	now := s.cfg.Clock()
	msg := inboundMessage{From: u.phone, FromUserID: u.bsuid, FromParentUserID: u.parent, ID: newID("wamid."), Timestamp: epoch(now)}
	msg.Interactive = &struct {
		Type                string          `json:"type"`
		CallPermissionReply permissionReply `json:"call_permission_reply"`
	}{Type: "call_permission_reply", CallPermissionReply: r}
	if contextID != "" {
		msg.Context = &msgContext{From: num.DisplayPhoneNumber, ID: contextID}
	}
	s.enqueue(num, "messages", "call_permission_reply", messagesValue{
		MessagingProduct: "whatsapp", Metadata: num.meta(),
		Contacts: []contact{u.contact()}, Messages: []inboundMessage{msg},
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
