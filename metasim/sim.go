package metasim

import (
	"bytes"
	"context"
	crand "crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
)

//go:embed assets/greeting.ogg
var greetingOgg []byte

//go:embed assets/tone-440.ogg
var toneOgg []byte

// GreetingAudio returns a copy of the embedded spoken demo greeting (Ogg Opus).
func GreetingAudio() []byte { return bytes.Clone(greetingOgg) }

// ToneAudio returns a copy of the embedded 440 Hz tone (Ogg Opus).
func ToneAudio() []byte { return bytes.Clone(toneOgg) }

// UserBehavior is how a simulated WhatsApp user reacts to the business.
type UserBehavior struct {
	Permission  PermissionReply // reply to call permission requests (zero: accept)
	Answer      CallAnswer      // reaction to business-initiated calls (zero: answer)
	AnswerAfter time.Duration   // ring delay before answering or declining
	Audio       []byte          // Ogg Opus the user plays (nil: greeting)
	Name        string          // profile name in webhooks (default "WhatsApp User")

	// BSUID is the user's business-scoped user id (default: derived from the
	// phone number, "GB.1…"). ParentBSUID ("GB.ENT.…") is optional.
	BSUID, ParentBSUID string
	// Username is the user's WhatsApp username (contacts[].profile.username).
	Username string
	// HidePhone withholds the phone number in webhooks (a username user the
	// number has not been in contact with): only *_user_id fields.
	HidePhone bool
	// MessageFailCode makes every message to the user fail: statuses
	// "failed" with errors[{code}] (e.g. 131026 old client).
	MessageFailCode int
	// NoRead stops statuses at "delivered".
	NoRead bool
}

// GraphRequest is one Graph API request the simulator received.
type GraphRequest struct {
	Time          time.Time // Clock time
	Method        string
	Path          string // as seen by the handler: /{version}/{phone-number-id}/{edge}
	Query         string // raw query string
	PhoneNumberID string // the business number addressed ("" for WABA and media paths)
	// Edge: calls, messages, call_permissions, settings, message_templates,
	// analytics, media ("" if unknown).
	Edge string
	// Action: calls: pre_accept, accept, reject, terminate, connect;
	// messages: the message type (interactive subtype, template, text).
	Action    string
	CallID    string
	To        string // `to` (or user_wa_id)
	Recipient string // `recipient` (BSUID)
	SDPType   string
	Body      []byte
	Status    int // HTTP status answered
	ErrorCode int // Meta error code answered (0 on success)
}

// Sim simulates Meta's side of WhatsApp Business calling. Create with New,
// end with Close.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	defPkts [][]byte // greeting packets

	cancel context.CancelFunc
	stopCh chan struct{} // closed by Close
	wg     sync.WaitGroup

	qmu     sync.Mutex
	queue   []pending
	qclosed bool
	qsignal chan struct{}

	numbers map[string]*bizNumber // by phone number id
	order   []*bizNumber          // primary first

	amu sync.Mutex
	adv Adversary
	rng *rand.Rand

	mu        sync.Mutex
	closed    bool
	calls     map[string]*UserCall
	callOrder []string
	users     map[string]*simUser  // by key (phone digits or BSUID)
	byBSUID   map[string]string    // BSUID or parent BSUID -> key
	windows   map[string]time.Time // customer service windows: pnid|key -> opened
	perms     map[string]*userPerm // pnid|key
	templates map[string]Template  // WABA|name|language
	sent      []sentMessage        // business messages, for pricing_analytics
	history   []callRecord         // ended calls, for call_analytics
	skew      AnalyticsSkew
	media     map[string]*mediaObj
	mediaFail int // media downloads still to fail with HTTP 500 (FailMediaDownloads)
	graphBase string
	requests  []GraphRequest
	reqNotify chan struct{} // closed and replaced on each new request
	webhooks  []SentWebhook
	whNotify  chan struct{}
}

// New validates cfg, applies defaults and starts the webhook sender.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pkts, err := oggopus.ReadPackets(bytes.NewReader(greetingOgg))
	if err != nil {
		return nil, fmt.Errorf("%w: embedded greeting: %w", ErrInvalidAudio, err)
	}
	s := &Sim{
		cfg: cfg, log: cfg.Logger.With("component", "metasim"), metrics: NewMetrics(cfg.Registerer),
		defPkts: pkts, qsignal: make(chan struct{}, 1), stopCh: make(chan struct{}),
		calls: map[string]*UserCall{}, users: map[string]*simUser{}, byBSUID: map[string]string{},
		windows: map[string]time.Time{}, perms: map[string]*userPerm{}, templates: map[string]Template{},
		media: map[string]*mediaObj{}, graphBase: strings.TrimSuffix(cfg.GraphBaseURL, "/"),
		reqNotify: make(chan struct{}), whNotify: make(chan struct{}),
	}
	s.numbers, s.order = buildNumbers(cfg)
	for _, t := range cfg.Templates {
		s.templates[templateKey(cfg.WABAID, t.Name, t.Language)] = t
	}
	if err := s.SetAdversary(cfg.Adversary); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.deliverLoop(ctx) })
	return s, nil
}

// Close ends every call (without webhooks), stops the webhook sender and waits
// for every goroutine. It is idempotent.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	calls := make([]*UserCall, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	s.qmu.Lock()
	s.qclosed = true
	s.qmu.Unlock()
	for _, c := range calls {
		c.end(endInfo{by: "closed", silent: true})
	}
	close(s.stopCh)
	s.cancel()
	s.wg.Wait()
	return nil
}

func (b UserBehavior) name() string {
	if b.Name != "" {
		return b.Name
	}
	return "WhatsApp User"
}

// OutboundCall returns the user side of a business-initiated call.
func (s *Sim) OutboundCall(callID string) (*UserCall, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callID]
	if !ok || c.dir != businessInitiated {
		return nil, false
	}
	return c, true
}

// Call returns any simulated call by id.
func (s *Sim) Call(callID string) (*UserCall, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callID]
	return c, ok
}

// Calls returns every call kept (active and recently ended), oldest first.
func (s *Sim) Calls() []*UserCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*UserCall, 0, len(s.callOrder))
	for _, id := range s.callOrder {
		out = append(out, s.calls[id])
	}
	return out
}

// addCall registers c; it fails once the simulator is closed.
func (s *Sim) addCall(c *UserCall) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.calls[c.id] = c
	s.callOrder = append(s.callOrder, c.id)
	// prune the oldest ended calls beyond MaxEndedCalls
	ended := 0
	for _, id := range s.callOrder {
		if s.calls[id].State() == Ended {
			ended++
		}
	}
	for i := 0; ended > s.cfg.MaxEndedCalls && i < len(s.callOrder); {
		id := s.callOrder[i]
		if s.calls[id].State() == Ended {
			delete(s.calls, id)
			s.callOrder = append(s.callOrder[:i], s.callOrder[i+1:]...)
			ended--
			continue
		}
		i++
	}
	s.metrics.Calls.WithLabelValues(strings.ToLower(c.dir.String())).Inc()
	s.metrics.ActiveCalls.Inc()
	return nil
}

// Requests returns every Graph request received so far, in order.
func (s *Sim) Requests() []GraphRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]GraphRequest, len(s.requests))
	copy(out, s.requests)
	return out
}

// WaitRequest returns the first received Graph request (past or future) for
// which match returns true, or ctx's error.
func (s *Sim) WaitRequest(ctx context.Context, match func(GraphRequest) bool) (GraphRequest, error) {
	seen := 0
	for {
		s.mu.Lock()
		for ; seen < len(s.requests); seen++ {
			if r := s.requests[seen]; match(r) {
				s.mu.Unlock()
				return r, nil
			}
		}
		ch := s.reqNotify
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return GraphRequest{}, fmt.Errorf("metasim: wait request: %w", ctx.Err())
		case <-ch:
		}
	}
}

func (s *Sim) recordRequest(r GraphRequest) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	close(s.reqNotify)
	s.reqNotify = make(chan struct{})
	s.mu.Unlock()
}

var digitsRE = regexp.MustCompile(`^[1-9][0-9]{6,14}$`)

// normalizeNumber turns "+447700900123" or "447700900123" into wa_id digits.
func normalizeNumber(n string) (string, error) {
	d := strings.TrimPrefix(strings.TrimSpace(n), "+")
	if !digitsRE.MatchString(d) {
		return "", fmt.Errorf("%w: %q", ErrInvalidNumber, mask(n))
	}
	return d, nil
}

// mask hides all but the last 4 digits of a number for logs.
func mask(n string) string {
	if len(n) <= 4 {
		return "****"
	}
	return strings.Repeat("*", len(n)-4) + n[len(n)-4:]
}

func newID(prefix string) string {
	b := make([]byte, 24)
	_, _ = crand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Sim) callingEnabled(num *bizNumber) bool {
	return s.numberSetting(num, "status") != "DISABLED"
}

func (s *Sim) callbackEnabled(num *bizNumber) bool {
	return s.numberSetting(num, "callback_permission_status") == "ENABLED"
}
