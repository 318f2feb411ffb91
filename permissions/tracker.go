package permissions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Tracker answers and records permission decisions for every pair. It holds
// no per-pair state in memory; several Trackers (several callgw instances)
// may share one Redis. It starts no goroutines and needs no Close.
type Tracker struct {
	rdb    redis.UniversalClient
	cfg    Config
	clock  Clock
	meta   MetaChecker
	m      *Metrics
	log    *slog.Logger
	script *redis.Script
}

// New returns a Tracker over rdb. cfg's zero fields take their defaults.
// clock nil means SystemClock; meta may be nil (no degraded fallback: CheckCall
// fails closed when Redis fails); reg nil registers no metrics; log nil
// discards logs.
func New(rdb redis.UniversalClient, cfg Config, clock Clock, meta MetaChecker, reg prometheus.Registerer, log *slog.Logger) (*Tracker, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidArgument)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{
		rdb: rdb, cfg: cfg.withDefaults(), clock: clock, meta: meta,
		m: NewMetrics(reg), log: log, script: newDecideScript(),
	}, nil
}

// Config returns the settings in use, defaults filled in.
func (t *Tracker) Config() Config { return t.cfg }

// Operation names (the op label of the duration histogram).
const (
	opState         = "state"
	opCheckCall     = "check_call"
	opRecordRequest = "record_request"
	opUndoRequest   = "undo_request"
	opRecordCall    = "record_call"
	opRecordInbound = "record_inbound"
	opGrant         = "grant"
	opRevoke        = "revoke"
	opMetaRefused   = "meta_refused"
)

// Meta error codes MetaRefused understands.
const (
	CodeNoPermission       = 138006 // no call permission: drop the local grant
	CodeRequestLimit       = 138009 // permission-request limit reached
	CodeConnectedCallLimit = 138012 // connected-call limit reached
	CodePermanentExists    = 138017 // a permanent permission already exists
)

const maxEventIDLen = 256

// keys returns the pair's four keys, all carrying the hash tag
// {<business>:<user>} so they share one Redis Cluster slot.
func (t *Tracker) keys(p Pair) []string {
	base := t.cfg.KeyPrefix + "{" + p.Business + ":" + p.User + "}:"
	return []string{base + "st", base + "rq", base + "cc", base + "ev"}
}

// raw is the script's answer.
type raw struct {
	status           Status
	exp              int64
	c24, c7          int
	nextReq          int64
	calls            int
	nextCall         int64
	streak           int
	callReason       Reason
	reqReason        Reason
	result           string
	granted, revoked bool
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func fromMs(v int64) time.Time {
	if v <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// run executes one decision: one EVALSHA (EVAL on NOSCRIPT), one round trip.
func (t *Tracker) run(ctx context.Context, op string, p Pair, id, a1, a2, a3 string) (raw, error) {
	now := t.clock.Now().UnixMilli()
	c := t.cfg
	res, err := t.script.Run(ctx, t.rdb, t.keys(p),
		scriptOp(op), now, ms(requestShortWindow), ms(requestLongWindow), ms(callWindow),
		c.RequestsPer24h, c.RequestsPer7d, c.ConnectedCallsPer24h, c.UnansweredReminder, c.UnansweredRevoke,
		ms(c.EventRetention), id, a1, a2, a3).Slice()
	if err != nil {
		return raw{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return parseRaw(res)
}

func scriptOp(op string) string {
	switch op {
	case opState, opCheckCall:
		return "view"
	case opRecordRequest:
		return "req"
	case opUndoRequest:
		return "undo"
	case opRecordCall:
		return "call"
	case opRecordInbound:
		return "in"
	case opGrant:
		return "grant"
	case opRevoke:
		return "revoke"
	case opMetaRefused:
		return "refused"
	}
	return op
}

func parseRaw(res []any) (raw, error) {
	if len(res) != 13 {
		return raw{}, fmt.Errorf("permissions: script returned %d values, want 13", len(res))
	}
	var r raw
	var errs []error
	i64 := func(i int) int64 {
		switch v := res[i].(type) {
		case int64:
			return v
		case string:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, err)
			}
			return n
		}
		errs = append(errs, fmt.Errorf("value %d: unexpected %T", i, res[i]))
		return 0
	}
	str := func(i int) string {
		if s, ok := res[i].(string); ok {
			return s
		}
		errs = append(errs, fmt.Errorf("value %d: unexpected %T", i, res[i]))
		return ""
	}
	r.status = Status(i64(0))
	r.exp = i64(1)
	r.c24 = int(i64(2))
	r.c7 = int(i64(3))
	r.nextReq = i64(4)
	r.calls = int(i64(5))
	r.nextCall = i64(6)
	r.streak = int(i64(7))
	r.callReason = Reason(str(8))
	r.reqReason = Reason(str(9))
	r.result = str(10)
	r.granted = i64(11) == 1
	r.revoked = i64(12) == 1
	if len(errs) > 0 {
		return raw{}, fmt.Errorf("permissions: bad script reply: %w", errors.Join(errs...))
	}
	return r, nil
}

// decision builds the pair's view; Allowed/Reason answer "may I call now".
func (t *Tracker) decision(r raw) Decision {
	c := t.cfg
	d := Decision{
		Status:           r.status,
		ExpiresAt:        fromMs(r.exp),
		CanCall:          r.callReason == ReasonNone,
		CanRequest:       r.reqReason == ReasonNone,
		RequestsLeft24h:  max(0, c.RequestsPer24h-r.c24),
		RequestsLeft7d:   max(0, c.RequestsPer7d-r.c7),
		NextRequestAt:    fromMs(r.nextReq),
		CallsLeft24h:     max(0, c.ConnectedCallsPer24h-r.calls),
		NextCallAt:       fromMs(r.nextCall),
		UnansweredStreak: r.streak,
		Reminder:         r.streak >= c.UnansweredReminder && r.streak < c.UnansweredRevoke,
	}
	if r.reqReason == ReasonRequestLimitMeta {
		d.RequestsLeft24h, d.RequestsLeft7d = 0, 0
	}
	if r.nextCall > 0 {
		d.CallsLeft24h = 0
	}
	d.Allowed, d.Reason = d.CanCall, r.callReason
	return d
}

func unavailable() Decision { return Decision{Reason: ReasonRedisUnavailable} }

func (t *Tracker) observe(op string, start time.Time) {
	t.m.Duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func checkEventID(kind, id string, required bool) error {
	if required && id == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidArgument, kind)
	}
	if len(id) > maxEventIDLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidArgument, kind, maxEventIDLen)
	}
	return nil
}

// State returns the pair's view without changing it. Allowed and Reason
// answer "may the business call now", as CheckCall does (without counting a
// call attempt). When Redis fails it falls back to Meta like CheckCall.
func (t *Tracker) State(ctx context.Context, p Pair) (Decision, error) {
	return t.view(ctx, opState, p)
}

// CheckCall answers "may the business call this user now": a valid grant and
// a free slot under the connected-call limit (and no 138012 from Meta still
// in force). When Redis fails, it asks the MetaChecker and returns its answer
// with Degraded=true; without a MetaChecker, or when Meta fails too, it fails
// closed (Allowed=false, Reason redis_unavailable or meta_unavailable) with an
// error wrapping ErrUnavailable.
func (t *Tracker) CheckCall(ctx context.Context, p Pair) (Decision, error) {
	d, err := t.view(ctx, opCheckCall, p)
	result := "denied"
	switch {
	case err != nil:
		result = "error"
	case d.Allowed:
		result = "allowed"
	}
	t.m.CallAttempts.WithLabelValues(result, reasonLabel(d.Reason)).Inc()
	return d, err
}

func (t *Tracker) view(ctx context.Context, op string, p Pair) (Decision, error) {
	start := time.Now()
	defer t.observe(op, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	r, err := t.run(ctx, op, p, "", "", "", "")
	if err == nil {
		return t.decision(r), nil
	}
	if ctx.Err() != nil {
		return unavailable(), err
	}
	return t.degraded(ctx, op, p, err)
}

// degraded answers from Meta's call_permissions when Redis failed.
func (t *Tracker) degraded(ctx context.Context, op string, p Pair, redisErr error) (Decision, error) {
	t.m.Degraded.Inc()
	if t.meta == nil {
		t.log.WarnContext(ctx, "permissions: redis unavailable, failing closed", "op", op, "pair", p.String(), "err", redisErr)
		return unavailable(), redisErr
	}
	mp, err := t.meta.CallPermissions(ctx, p.User)
	if err != nil {
		t.log.WarnContext(ctx, "permissions: redis and meta unavailable, failing closed", "op", op, "pair", p.String(), "err", err)
		return Decision{Reason: ReasonMetaUnavailable, Degraded: true}, fmt.Errorf("%w (%w: %w)", redisErr, ErrMetaFallback, err)
	}
	t.log.WarnContext(ctx, "permissions: redis unavailable, answered by meta", "op", op, "pair", p.String(), "err", redisErr)
	d := Decision{
		Allowed: mp.CanCall, Status: mp.Status, CanCall: mp.CanCall, CanRequest: mp.CanRequest,
		RequestsLeft24h: mp.RequestsLeft24h, RequestsLeft7d: mp.RequestsLeft7d,
		NextRequestAt: mp.NextRequestAt, Degraded: true,
	}
	if mp.Status == Temporary {
		d.ExpiresAt = mp.ExpiresAt
	}
	if !mp.CanCall {
		d.Reason = ReasonNoPermission
		if mp.Status != NoPermission {
			d.Reason = ReasonConnectedCallLimit
		}
	}
	return d, nil
}

// RecordRequest checks the request limits and, when they allow, counts the
// request, atomically. Allowed=false with a Reason when a limit is reached or
// a permanent grant exists (Meta would answer 138009 or 138017). Calling it
// again with the same requestID counts nothing more and answers Allowed=true
// (Reason empty): the request was already let through. When Redis fails it
// fails closed: Allowed=false, Reason redis_unavailable, error wrapping
// ErrUnavailable.
//
// The returned view is after the request was counted: CanRequest and the
// counts left describe the next request.
func (t *Tracker) RecordRequest(ctx context.Context, p Pair, requestID string) (Decision, error) {
	start := time.Now()
	defer t.observe(opRecordRequest, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	if err := checkEventID("request id", requestID, true); err != nil {
		return Decision{}, err
	}
	r, err := t.run(ctx, opRecordRequest, p, requestID, "", "", "")
	if err != nil {
		t.m.Degraded.Inc()
		t.m.Requests.WithLabelValues("error", string(ReasonRedisUnavailable)).Inc()
		t.log.WarnContext(ctx, "permissions: redis unavailable, request refused", "pair", p.String(), "err", err)
		return unavailable(), err
	}
	d := t.decision(r)
	switch r.result {
	case "allowed", "duplicate":
		d.Allowed, d.Reason = true, ReasonNone
		t.m.Requests.WithLabelValues(r.result, "none").Inc()
	default:
		d.Allowed, d.Reason = false, Reason(r.result)
		t.m.Requests.WithLabelValues("denied", r.result).Inc()
	}
	t.log.DebugContext(ctx, "permissions: request", "pair", p.String(), "result", r.result,
		"left_24h", d.RequestsLeft24h, "left_7d", d.RequestsLeft7d)
	return d, nil
}

// UndoRequest uncounts a request Meta refused to send. Unknown ids are
// ignored (so it is idempotent).
func (t *Tracker) UndoRequest(ctx context.Context, p Pair, requestID string) error {
	start := time.Now()
	defer t.observe(opUndoRequest, start)
	if err := p.Validate(); err != nil {
		return err
	}
	if err := checkEventID("request id", requestID, true); err != nil {
		return err
	}
	_, err := t.run(ctx, opUndoRequest, p, requestID, "", "", "")
	return err
}

// RecordCall records how a business-initiated call ended. CallConnected
// counts toward the 24 h connected-call limit and resets the request counters
// and the unanswered streak; CallUnanswered extends the streak (Reminder at
// UnansweredReminder, revocation at UnansweredRevoke); CallDeclined extends
// it too (the reference: "unanswered or rejected" calls count). Idempotent per callID: the first result recorded wins.
func (t *Tracker) RecordCall(ctx context.Context, p Pair, callID string, o CallResult) (Decision, error) {
	start := time.Now()
	defer t.observe(opRecordCall, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	if err := checkEventID("call id", callID, true); err != nil {
		return Decision{}, err
	}
	if o < CallConnected || o > CallDeclined {
		return Decision{}, fmt.Errorf("%w: call result %d", ErrInvalidArgument, o)
	}
	r, err := t.run(ctx, opRecordCall, p, callID, o.String(), "", "")
	if err != nil {
		return unavailable(), err
	}
	t.applied(ctx, p, r, UnansweredCalls, UnansweredCalls)
	return t.decision(r), nil
}

// RecordInbound records a call placed by the user. With CallbackPermission on
// it grants temporary permission (now + TemporaryValidity; never shortening a
// longer grant nor replacing a permanent one), once per callID; connected
// resets the request counters and the unanswered streak. Idempotent per
// (callID, connected), so it may be called at ring time and again on answer.
func (t *Tracker) RecordInbound(ctx context.Context, p Pair, callID string, connected bool) (Decision, error) {
	start := time.Now()
	defer t.observe(opRecordInbound, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	if err := checkEventID("call id", callID, true); err != nil {
		return Decision{}, err
	}
	conn, cb := "0", "0"
	if connected {
		conn = "1"
	}
	if t.cfg.CallbackPermission {
		cb = "1"
	}
	exp := t.clock.Now().Add(t.cfg.TemporaryValidity).UnixMilli()
	r, err := t.run(ctx, opRecordInbound, p, callID, conn, cb, strconv.FormatInt(exp, 10))
	if err != nil {
		return unavailable(), err
	}
	t.applied(ctx, p, r, Callback, Callback)
	return t.decision(r), nil
}

// Grant stores a permission: permanent, or temporary until g.ExpiresAt (zero:
// now + TemporaryValidity). A temporary grant never replaces a permanent one
// nor shortens a later expiry (webhooks arrive out of order); a revocation
// does remove both. Idempotent per g.ID.
func (t *Tracker) Grant(ctx context.Context, p Pair, g Grant) (Decision, error) {
	start := time.Now()
	defer t.observe(opGrant, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	if err := checkEventID("grant id", g.ID, false); err != nil {
		return Decision{}, err
	}
	if g.Source == SourceUnknown || g.Source >= UnansweredCalls {
		return Decision{}, fmt.Errorf("%w: grant source %s", ErrInvalidArgument, g.Source)
	}
	perm, exp := "0", int64(0)
	if g.Permanent {
		perm = "1"
	} else if g.ExpiresAt.IsZero() {
		exp = t.clock.Now().Add(t.cfg.TemporaryValidity).UnixMilli()
	} else {
		exp = g.ExpiresAt.UnixMilli()
		if exp <= 0 {
			return Decision{}, fmt.Errorf("%w: grant expiry %s before 1970", ErrInvalidArgument, g.ExpiresAt)
		}
	}
	r, err := t.run(ctx, opGrant, p, g.ID, perm, strconv.FormatInt(exp, 10), g.Source.String())
	if err != nil {
		return unavailable(), err
	}
	t.applied(ctx, p, r, g.Source, g.Source)
	return t.decision(r), nil
}

// Revoke removes the pair's grant (a call_permission_reply reject, from the
// user or automatic). Idempotent per id (empty: no de-duplication).
func (t *Tracker) Revoke(ctx context.Context, p Pair, src Source, id string) (Decision, error) {
	start := time.Now()
	defer t.observe(opRevoke, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	if err := checkEventID("revoke id", id, false); err != nil {
		return Decision{}, err
	}
	if src == SourceUnknown || src > UnansweredCalls {
		return Decision{}, fmt.Errorf("%w: revoke source %s", ErrInvalidArgument, src)
	}
	r, err := t.run(ctx, opRevoke, p, id, "", "", src.String())
	if err != nil {
		return unavailable(), err
	}
	t.applied(ctx, p, r, src, src)
	return t.decision(r), nil
}

// MetaRefused corrects local state from a Meta refusal: 138006 drops the
// local grant; 138009 blocks requests until nextAllowed; 138012 blocks calls
// until nextAllowed; 138017 records a permanent grant. A zero nextAllowed
// means now + 24 h. A connected call lifts a 138009 block (Meta resets the
// request counters then). Other codes return ErrUnknownMetaCode and change
// nothing.
func (t *Tracker) MetaRefused(ctx context.Context, p Pair, code int, nextAllowed time.Time) (Decision, error) {
	start := time.Now()
	defer t.observe(opMetaRefused, start)
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	switch code {
	case CodeNoPermission, CodeRequestLimit, CodeConnectedCallLimit, CodePermanentExists:
	default:
		return Decision{}, fmt.Errorf("%w: %d", ErrUnknownMetaCode, code)
	}
	if nextAllowed.IsZero() {
		nextAllowed = t.clock.Now().Add(24 * time.Hour)
	}
	r, err := t.run(ctx, opMetaRefused, p, "", strconv.Itoa(code), strconv.FormatInt(nextAllowed.UnixMilli(), 10), "")
	if err != nil {
		return unavailable(), err
	}
	t.applied(ctx, p, r, Meta, Meta)
	return t.decision(r), nil
}

// applied counts and logs the grant or revocation an operation made.
func (t *Tracker) applied(ctx context.Context, p Pair, r raw, grantSrc, revokeSrc Source) {
	if r.granted {
		t.m.Grants.WithLabelValues(grantSrc.String()).Inc()
		t.log.InfoContext(ctx, "permissions: granted", "pair", p.String(), "source", grantSrc.String(),
			"status", r.status.String(), "expires_at", fromMs(r.exp))
	}
	if r.revoked {
		t.m.Revocations.WithLabelValues(revokeSrc.String()).Inc()
		t.log.InfoContext(ctx, "permissions: revoked", "pair", p.String(), "source", revokeSrc.String())
	}
}
