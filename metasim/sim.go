package metasim

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"log/slog"
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
	AnswerAfter time.Duration   // delay before answering or declining
	Audio       []byte          // Ogg Opus the user plays (nil: greeting)
	Name        string          // profile name in webhooks (default "WhatsApp User")
}

// GraphRequest is one Graph API request the simulator received.
type GraphRequest struct {
	Time      time.Time // Clock time
	Method    string
	Path      string // as seen by the handler: /{version}/{phone-number-id}/{edge}
	Edge      string // calls, messages, call_permissions, settings ("" if unknown)
	Action    string // calls: pre_accept, accept, reject, terminate, connect
	CallID    string
	To        string
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
	wg     sync.WaitGroup

	qmu     sync.Mutex
	queue   []outgoing
	qclosed bool
	qsignal chan struct{}

	mu        sync.Mutex
	closed    bool
	calls     map[string]*UserCall
	callOrder []string
	users     map[string]UserBehavior
	perms     map[string]*userPerm
	settings  map[string]any // the "calling" object
	requests  []GraphRequest
	reqNotify chan struct{} // closed and replaced on each new request
	webhooks  []SentWebhook
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
	cbs := "DISABLED"
	if cfg.CallbackPermission {
		cbs = "ENABLED"
	}
	s := &Sim{
		cfg: cfg, log: cfg.Logger.With("component", "metasim"), metrics: NewMetrics(cfg.Registerer),
		defPkts: pkts, qsignal: make(chan struct{}, 1),
		calls: map[string]*UserCall{}, users: map[string]UserBehavior{}, perms: map[string]*userPerm{},
		settings: map[string]any{
			"status": "ENABLED", "call_icon_visibility": "DEFAULT",
			"callback_permission_status": cbs, "srtp_key_exchange_protocol": "DTLS",
		},
		reqNotify: make(chan struct{}),
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
	s.cancel()
	s.wg.Wait()
	return nil
}

// SetUser sets how the user with this number (E.164, '+' optional) behaves.
// Numbers that are not E.164 are ignored (logged).
func (s *Sim) SetUser(number string, b UserBehavior) {
	n, err := normalizeNumber(number)
	if err != nil {
		s.log.Warn("metasim: SetUser ignored", "err", err)
		return
	}
	s.mu.Lock()
	s.users[n] = b
	s.mu.Unlock()
}

func (s *Sim) user(n string) UserBehavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[n]
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
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Sim) callingEnabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _ := s.settings["status"].(string)
	return st != "DISABLED"
}

func (s *Sim) callbackEnabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _ := s.settings["callback_permission_status"].(string)
	return st == "ENABLED"
}
