package permissions

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// action is one call on the tracker.
type action struct {
	name string
	do   func(ctx context.Context, tr *Tracker, p Pair) (Decision, error)
}

func req(id string) action {
	return action{"RecordRequest(" + id + ")", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		return tr.RecordRequest(ctx, p, id)
	}}
}

func undo(id string) action {
	return action{"UndoRequest(" + id + ")", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		if err := tr.UndoRequest(ctx, p, id); err != nil {
			return Decision{}, err
		}
		return tr.State(ctx, p)
	}}
}

func call(id string, o CallResult) action {
	return action{"RecordCall(" + id + "," + o.String() + ")", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		return tr.RecordCall(ctx, p, id, o)
	}}
}

func inbound(id string, connected bool) action {
	return action{fmt.Sprintf("RecordInbound(%s,%v)", id, connected), func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		return tr.RecordInbound(ctx, p, id, connected)
	}}
}

func grantTemp(id string, expiresAfterT0 time.Duration) action {
	return action{"Grant(temporary," + id + ")", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		g := Grant{Source: UserAction, ID: id}
		if expiresAfterT0 != 0 {
			g.ExpiresAt = t0.Add(expiresAfterT0)
		}
		return tr.Grant(ctx, p, g)
	}}
}

func grantPerm(id string) action {
	return action{"Grant(permanent," + id + ")", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		return tr.Grant(ctx, p, Grant{Permanent: true, Source: UserAction, ID: id})
	}}
}

func revoke(src Source, id string) action {
	return action{"Revoke(" + src.String() + "," + id + ")", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		return tr.Revoke(ctx, p, src, id)
	}}
}

func refused(code int, nextAfterT0 time.Duration) action {
	return action{fmt.Sprintf("MetaRefused(%d)", code), func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) {
		var next time.Time
		if nextAfterT0 != 0 {
			next = t0.Add(nextAfterT0)
		}
		return tr.MetaRefused(ctx, p, code, next)
	}}
}

var (
	check = action{"CheckCall", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) { return tr.CheckCall(ctx, p) }}
	state = action{"State", func(ctx context.Context, tr *Tracker, p Pair) (Decision, error) { return tr.State(ctx, p) }}
)

// expect checks a Decision; it returns "" when it holds.
type expect func(d Decision) string

func is(allowed bool, reason Reason) expect {
	return func(d Decision) string {
		if d.Allowed != allowed || d.Reason != reason {
			return fmt.Sprintf("allowed=%v reason=%q, want %v %q", d.Allowed, d.Reason, allowed, reason)
		}
		return ""
	}
}

func left(r24, r7 int) expect {
	return func(d Decision) string {
		if d.RequestsLeft24h != r24 || d.RequestsLeft7d != r7 {
			return fmt.Sprintf("requests left %d/%d, want %d/%d", d.RequestsLeft24h, d.RequestsLeft7d, r24, r7)
		}
		return ""
	}
}

func canRequest(want bool) expect {
	return func(d Decision) string {
		if d.CanRequest != want {
			return fmt.Sprintf("can_request=%v, want %v", d.CanRequest, want)
		}
		return ""
	}
}

func canCall(want bool) expect {
	return func(d Decision) string {
		if d.CanCall != want {
			return fmt.Sprintf("can_call=%v, want %v", d.CanCall, want)
		}
		return ""
	}
}

func atOffset(field string, got time.Time, want time.Duration) string {
	if want < 0 {
		if !got.IsZero() {
			return fmt.Sprintf("%s=%s, want zero", field, got)
		}
		return ""
	}
	if !got.Equal(t0.Add(want)) {
		return fmt.Sprintf("%s=%s, want t0+%s", field, got, want)
	}
	return ""
}

// none as an offset means "zero time".
const none = time.Duration(-1)

func nextReq(off time.Duration) expect {
	return func(d Decision) string { return atOffset("next_request_at", d.NextRequestAt, off) }
}

func nextCall(off time.Duration) expect {
	return func(d Decision) string { return atOffset("next_call_at", d.NextCallAt, off) }
}

func expires(off time.Duration) expect {
	return func(d Decision) string { return atOffset("expires_at", d.ExpiresAt, off) }
}

func status(s Status) expect {
	return func(d Decision) string {
		if d.Status != s {
			return fmt.Sprintf("status=%s, want %s", d.Status, s)
		}
		return ""
	}
}

func streak(n int, reminder bool) expect {
	return func(d Decision) string {
		if d.UnansweredStreak != n || d.Reminder != reminder {
			return fmt.Sprintf("streak=%d reminder=%v, want %d %v", d.UnansweredStreak, d.Reminder, n, reminder)
		}
		return ""
	}
}

func callsLeft(n int) expect {
	return func(d Decision) string {
		if d.CallsLeft24h != n {
			return fmt.Sprintf("calls_left_24h=%d, want %d", d.CallsLeft24h, n)
		}
		return ""
	}
}

// step runs act at t0+at and checks the decision.
type step struct {
	at   time.Duration
	act  action
	want []expect
}

type scenario struct {
	name  string
	cfg   Config
	steps []step
}

var scenarios = []scenario{
	{name: "request limit 24h edge and 7d edge", steps: []step{
		{0, state, []expect{canRequest(true), left(1, 2), nextReq(none)}},
		{0, req("r1"), []expect{is(true, ""), left(0, 1), canRequest(false), nextReq(day)}},
		{time.Minute, req("r2"), []expect{is(false, ReasonRequestLimit24h), left(0, 1), nextReq(day)}},
		{day - time.Minute, req("r3"), []expect{is(false, ReasonRequestLimit24h)}},
		{day - time.Millisecond, req("r3b"), []expect{is(false, ReasonRequestLimit24h)}},
		{day, req("r4"), []expect{is(true, ""), left(0, 0), nextReq(week)}},
		{2 * day, req("r5"), []expect{is(false, ReasonRequestLimit7d), left(1, 0), nextReq(week)}},
		{week - time.Millisecond, req("r6"), []expect{is(false, ReasonRequestLimit7d)}},
		{week, req("r7"), []expect{is(true, ""), left(0, 0), nextReq(week + day)}},
	}},
	{name: "same request id twice counts once", steps: []step{
		{0, req("same"), []expect{is(true, ""), left(0, 1)}},
		{time.Second, req("same"), []expect{is(true, ""), left(0, 1)}},
		{time.Minute, req("other"), []expect{is(false, ReasonRequestLimit24h), left(0, 1)}},
	}},
	{name: "undo uncounts a request meta refused", steps: []step{
		{0, req("r1"), []expect{is(true, ""), left(0, 1)}},
		{time.Second, undo("r1"), []expect{left(1, 2), canRequest(true)}},
		{time.Second, undo("r1"), []expect{left(1, 2)}},
		{time.Minute, req("r2"), []expect{is(true, ""), left(0, 1)}},
	}},
	{name: "connected business call resets request counters", steps: []step{
		{0, req("r1"), []expect{is(true, "")}},
		{day, req("r2"), []expect{is(true, ""), left(0, 0)}},
		{day + time.Hour, grantTemp("g1", 0), []expect{is(true, "")}},
		{day + 2*time.Hour, call("c1", CallConnected), []expect{is(true, ""), left(1, 2), canRequest(true), callsLeft(99)}},
		{day + 3*time.Hour, req("r3"), []expect{is(true, ""), left(0, 1)}},
	}},
	{name: "connected user call resets request counters", steps: []step{
		{0, req("r1"), []expect{is(true, "")}},
		{time.Hour, inbound("in1", false), []expect{left(0, 1), is(false, ReasonNoPermission)}},
		{time.Hour, req("r2"), []expect{is(false, ReasonRequestLimit24h)}},
		{2 * time.Hour, inbound("in1", true), []expect{left(1, 2), canRequest(true), callsLeft(100)}},
		{3 * time.Hour, req("r2"), []expect{is(true, ""), left(0, 1)}},
	}},
	{name: "unanswered and declined calls do not reset request counters", steps: []step{
		{0, grantTemp("g", 0), nil},
		{0, req("r1"), []expect{is(true, "")}},
		{time.Hour, call("u1", CallUnanswered), []expect{left(0, 1)}},
		{time.Hour, call("d1", CallDeclined), []expect{left(0, 1)}},
		{2 * time.Hour, req("r2"), []expect{is(false, ReasonRequestLimit24h)}},
	}},
	{name: "meta 138009 blocks requests until next allowed, a connected call lifts it", steps: []step{
		{0, refused(CodeRequestLimit, 10*time.Hour), []expect{canRequest(false), left(0, 0), nextReq(10 * time.Hour)}},
		{time.Hour, req("r1"), []expect{is(false, ReasonRequestLimitMeta)}},
		{10 * time.Hour, req("r2"), []expect{is(true, ""), left(0, 1)}},
		{11 * time.Hour, refused(CodeRequestLimit, 0), []expect{nextReq(35 * time.Hour)}},
		{12 * time.Hour, inbound("in1", true), []expect{canRequest(true), left(1, 2)}},
	}},
	{name: "temporary grant uses meta expiry", steps: []step{
		{0, grantTemp("g1", 72*time.Hour), []expect{is(true, ""), status(Temporary), expires(72 * time.Hour)}},
		{72*time.Hour - time.Millisecond, check, []expect{is(true, ""), status(Temporary)}},
		{72 * time.Hour, check, []expect{is(false, ReasonExpired), status(NoPermission), expires(72 * time.Hour), canCall(false)}},
		{80 * time.Hour, req("r1"), []expect{is(true, "")}},
	}},
	{name: "temporary grant without expiry lasts TemporaryValidity", cfg: Config{TemporaryValidity: 72 * time.Hour}, steps: []step{
		{time.Hour, grantTemp("g1", 0), []expect{is(true, ""), expires(73 * time.Hour)}},
		{73*time.Hour - time.Millisecond, check, []expect{is(true, "")}},
		{73 * time.Hour, check, []expect{is(false, ReasonExpired)}},
	}},
	{name: "default validity is 7 days", steps: []step{
		{0, grantTemp("g1", 0), []expect{is(true, ""), expires(week)}},
		{week, check, []expect{is(false, ReasonExpired)}},
	}},
	{name: "a later temporary grant extends, an earlier one does not shorten", steps: []step{
		{0, grantTemp("g1", 10*time.Hour), []expect{expires(10 * time.Hour)}},
		{time.Hour, grantTemp("g2", 5*time.Hour), []expect{expires(10 * time.Hour)}},
		{2 * time.Hour, grantTemp("g3", 20*time.Hour), []expect{expires(20 * time.Hour)}},
		{30 * time.Hour, grantTemp("g4", 40*time.Hour), []expect{is(true, ""), expires(40 * time.Hour)}},
	}},
	{name: "permanent grant never expires and blocks requests", steps: []step{
		{0, grantPerm("g1"), []expect{is(true, ""), status(Permanent), expires(none)}},
		{365 * day, check, []expect{is(true, ""), status(Permanent)}},
		{365 * day, req("r1"), []expect{is(false, ReasonPermanentExists), canRequest(false), nextReq(none)}},
		{366 * day, grantTemp("g2", 366*day+time.Hour), []expect{status(Permanent), expires(none)}},
	}},
	{name: "unanswered streak reminds at 2 and revokes at 4", steps: []step{
		{0, grantPerm("g1"), nil},
		{time.Minute, call("u1", CallUnanswered), []expect{is(true, ""), streak(1, false)}},
		{2 * time.Minute, call("u2", CallUnanswered), []expect{is(true, ""), streak(2, true)}},
		{3 * time.Minute, call("u3", CallUnanswered), []expect{is(true, ""), streak(3, true)}},
		{4 * time.Minute, call("u4", CallUnanswered), []expect{is(false, ReasonRevoked), streak(4, false), status(NoPermission)}},
		{5 * time.Minute, check, []expect{is(false, ReasonRevoked)}},
		{6 * time.Minute, grantTemp("g2", 0), []expect{is(true, ""), streak(0, false)}},
	}},
	{name: "connected call resets the unanswered streak", steps: []step{
		{0, grantTemp("g1", 0), nil},
		{1 * time.Minute, call("u1", CallUnanswered), nil},
		{2 * time.Minute, call("u2", CallUnanswered), nil},
		{3 * time.Minute, call("u3", CallUnanswered), []expect{streak(3, true)}},
		{4 * time.Minute, call("c1", CallConnected), []expect{streak(0, false), callsLeft(99)}},
		{5 * time.Minute, call("u4", CallUnanswered), nil},
		{6 * time.Minute, call("u5", CallUnanswered), nil},
		{7 * time.Minute, call("u6", CallUnanswered), []expect{is(true, ""), streak(3, true)}},
		{8 * time.Minute, inbound("in1", true), []expect{streak(0, false)}},
	}},
	{name: "same call id twice counts once, a decline extends the streak", steps: []step{
		{0, grantTemp("g1", 0), nil},
		{time.Minute, call("u1", CallUnanswered), []expect{streak(1, false)}},
		{2 * time.Minute, call("u1", CallUnanswered), []expect{streak(1, false)}},
		{3 * time.Minute, call("u1", CallConnected), []expect{streak(1, false), callsLeft(100)}},
		{4 * time.Minute, call("d1", CallDeclined), []expect{streak(2, true), is(true, "")}},
	}},
	{name: "callback permission grants temporary permission", cfg: Config{CallbackPermission: true, TemporaryValidity: 72 * time.Hour}, steps: []step{
		{0, check, []expect{is(false, ReasonNoPermission)}},
		{time.Hour, inbound("in1", false), []expect{is(true, ""), status(Temporary), expires(73 * time.Hour)}},
		{2 * time.Hour, inbound("in1", true), []expect{expires(73 * time.Hour)}},
		{75 * time.Hour, check, []expect{is(false, ReasonExpired)}},
		{76 * time.Hour, inbound("in2", false), []expect{is(true, ""), expires(148 * time.Hour)}},
	}},
	{name: "callback permission off grants nothing", steps: []step{
		{0, inbound("in1", true), []expect{is(false, ReasonNoPermission), status(NoPermission)}},
	}},
	{name: "callback never downgrades a permanent grant", cfg: Config{CallbackPermission: true}, steps: []step{
		{0, grantPerm("g1"), nil},
		{time.Hour, inbound("in1", false), []expect{status(Permanent), expires(none)}},
	}},
	{name: "user reject revokes", steps: []step{
		{0, grantTemp("g1", 0), []expect{is(true, "")}},
		{time.Hour, revoke(UserAction, "x1"), []expect{is(false, ReasonRevoked), status(NoPermission)}},
		{2 * time.Hour, check, []expect{is(false, ReasonRevoked)}},
	}},
	{name: "automatic reject revokes a permanent grant", steps: []step{
		{0, grantPerm("g1"), nil},
		{time.Hour, revoke(Automatic, "x1"), []expect{is(false, ReasonRevoked), status(NoPermission)}},
		{2 * time.Hour, req("r1"), []expect{is(true, "")}},
	}},
	{name: "grant and revoke are idempotent per id", steps: []step{
		{0, grantTemp("g1", 0), nil},
		{time.Hour, revoke(UserAction, "x1"), []expect{is(false, ReasonRevoked)}},
		{2 * time.Hour, grantTemp("g1", 0), []expect{is(false, ReasonRevoked)}},
		{3 * time.Hour, grantTemp("g2", 0), []expect{is(true, "")}},
		{4 * time.Hour, revoke(UserAction, "x1"), []expect{is(true, "")}},
	}},
	{name: "meta 138006 drops the local grant", steps: []step{
		{0, grantPerm("g1"), nil},
		{time.Hour, refused(CodeNoPermission, 0), []expect{is(false, ReasonNoPermission), status(NoPermission)}},
		{time.Hour, req("r1"), []expect{is(true, "")}},
	}},
	{name: "meta 138012 blocks calls until next allowed", steps: []step{
		{0, grantPerm("g1"), nil},
		{time.Hour, refused(CodeConnectedCallLimit, 5*time.Hour), []expect{is(false, ReasonConnectedCallLimit), nextCall(5 * time.Hour), callsLeft(0)}},
		{5*time.Hour - time.Millisecond, check, []expect{is(false, ReasonConnectedCallLimit)}},
		{5 * time.Hour, check, []expect{is(true, ""), nextCall(none), callsLeft(100)}},
	}},
	{name: "meta 138017 records a permanent grant", steps: []step{
		{0, refused(CodePermanentExists, 0), []expect{is(true, ""), status(Permanent)}},
		{time.Hour, req("r1"), []expect{is(false, ReasonPermanentExists)}},
	}},
	{name: "connected-call limit per rolling 24h", cfg: Config{ConnectedCallsPer24h: 3}, steps: []step{
		{0, grantPerm("g1"), []expect{callsLeft(3)}},
		{0, call("c1", CallConnected), []expect{callsLeft(2)}},
		{time.Hour, call("c2", CallConnected), []expect{callsLeft(1)}},
		{2 * time.Hour, call("c3", CallConnected), []expect{is(false, ReasonConnectedCallLimit), callsLeft(0), nextCall(day)}},
		{day - time.Millisecond, check, []expect{is(false, ReasonConnectedCallLimit), nextCall(day)}},
		{day, check, []expect{is(true, ""), callsLeft(1), nextCall(none)}},
		{day + 30*time.Minute, call("c4", CallConnected), []expect{is(false, ReasonConnectedCallLimit), nextCall(day + time.Hour)}},
		{day + time.Hour, check, []expect{is(true, ""), callsLeft(1)}},
	}},
	{name: "no permission by default", steps: []step{
		{0, check, []expect{is(false, ReasonNoPermission), status(NoPermission), canCall(false), canRequest(true), left(1, 2), callsLeft(100), streak(0, false)}},
	}},
}

func TestRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		rdb := b.newClient()
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				clock := newClock()
				tr := newTracker(t, rdb, sc.cfg, clock, nil, nil)
				p := newPair()
				ctx := ctxT(t)
				for i, s := range sc.steps {
					clock.Set(t0.Add(s.at))
					d, err := s.act.do(ctx, tr, p)
					if err != nil {
						t.Fatalf("step %d %s at t0+%s: %v", i, s.act.name, s.at, err)
					}
					var msgs []string
					for _, w := range s.want {
						if m := w(d); m != "" {
							msgs = append(msgs, m)
						}
					}
					if len(msgs) > 0 {
						t.Errorf("step %d %s at t0+%s: %s\n  decision: %+v", i, s.act.name, s.at, strings.Join(msgs, "; "), d)
					}
				}
			})
		}
	})
}
