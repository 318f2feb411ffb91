package lifecycle

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
)

var (
	t0    = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	rules = Rules{RingTimeout: 25 * time.Second, RingCeiling: 60 * time.Second, AgentGrace: 20 * time.Second, MetaWait: 10 * time.Second}
)

func at(s int) When { return When{At: t0.Add(time.Duration(s) * time.Second)} }

func uic() Call {
	return New(call.Record{ID: "wacid.in", Direction: call.UserInitiated, MetaDuration: -1})
}
func bic() Call {
	return New(call.Record{ID: "wacid.out", Direction: call.BusinessInitiated, Agent: "ann", MetaDuration: -1})
}

// run applies events in order; a refused command fails the test unless the
// step expects it.
type stepT struct {
	ev      Event
	wantErr error
}

func run(t *testing.T, c Call, steps ...any) (Call, []Effect) {
	t.Helper()
	var all []Effect
	if c.Rec.Direction == call.BusinessInitiated {
		c.Agent = c.Rec.Agent
	}
	for i, s := range steps {
		var st stepT
		switch v := s.(type) {
		case stepT:
			st = v
		case Event:
			st = stepT{ev: v}
		default:
			t.Fatalf("step %d: %T is not an event", i, s)
		}
		next, fx, err := rules.Transition(c, st.ev)
		if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
			t.Fatalf("step %d %T: err %v, want %v", i, st.ev, err, st.wantErr)
		}
		if err != nil && (!reflect.DeepEqual(next, c) || fx != nil) {
			t.Fatalf("step %d %T: a refused command changed the call", i, st.ev)
		}
		c = next
		all = append(all, fx...)
	}
	return c, all
}

func has(fx []Effect, e Effect) bool { return slices.Contains(fx, e) }

func count(fx []Effect, e Effect) int {
	n := 0
	for _, f := range fx {
		if f == e {
			n++
		}
	}
	return n
}

func index(fx []Effect, e Effect) int { return slices.Index(fx, e) }

// uicConnected walks a user-initiated call to connected.
func uicConnected() []any {
	return []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 2},
		AgentAccept{When: at(3), Agent: "ann", Available: true}, Claimed{When: at(3), Agent: "ann", Won: true},
		AgentAnswer{When: at(4), Agent: "ann"}, AgentAnswerApplied{When: at(4)}, AcceptDone{When: at(5)}}
}

func TestUserInitiatedLifecycle(t *testing.T) {
	ans := func(extra ...any) []any { return append(uicConnected(), extra...) }
	start, end := t0.Add(5*time.Second), t0.Add(65*time.Second)
	hangup := MetaTerminate{When: at(65), Status: "COMPLETED", Start: start, End: end, Duration: 60}
	tests := []struct {
		name        string
		steps       []any
		state       State
		outcome     call.Outcome
		reason      call.EndReason
		code        int
		want, never []Effect
	}{
		{name: "answered, the user hangs up", steps: ans(hangup), state: StateFinal,
			outcome: call.Answered, reason: call.UserHangup,
			want:  []Effect{PrepareInbound{}, GraphAccept{}, StartWhatsAppMedia{}, ArmWatchdog{}, UsePermission{Use: UseInboundConnected}, Finalize{}},
			never: []Effect{GraphReject{}, GraphTerminate{}, StartTimer{Timer: TimerMetaWait, After: rules.MetaWait}}},
		{name: "answered, duplicate terminate", steps: ans(hangup, hangup), state: StateFinal,
			outcome: call.Answered, reason: call.UserHangup},
		{name: "answered, the agent hangs up, Meta's terminate completes it",
			steps: ans(AgentHangup{When: at(65), Agent: "ann"}, hangup), state: StateFinal,
			outcome: call.Answered, reason: call.AgentHangup,
			want:  []Effect{GraphTerminate{}, StartTimer{Timer: TimerMetaWait, After: rules.MetaWait}, StopTimer{Timer: TimerMetaWait}, Finalize{}},
			never: []Effect{GraphReject{}}},
		{name: "answered, the agent hangs up, terminate never comes",
			steps: ans(AgentHangup{When: at(65), Agent: "ann"}, TimerFired{When: at(75), Timer: TimerMetaWait}),
			state: StateFinal, outcome: call.Answered, reason: call.AgentHangup, want: []Effect{Finalize{}}},
		{name: "Meta ends it with 138021 (no media from us)",
			steps: ans(MetaTerminate{When: at(30), Status: "FAILED", Start: start, End: t0.Add(30 * time.Second), Duration: 25, Errors: []int{138021}}),
			state: StateFinal, outcome: call.Answered, reason: call.MediaTimeout, code: 138021},
		{name: "our watchdog ends it", steps: ans(MediaTimeout{When: at(40)}), state: StateEnded,
			outcome: call.Answered, reason: call.MediaTimeout, want: []Effect{GraphTerminate{}}},
		{name: "no agent available", steps: []any{Begin{When: at(0)}, Prepared{When: at(0)}},
			state: StateEnded, outcome: call.Missed, reason: call.NoAgent,
			want: []Effect{GraphReject{}, CloseMedia{}}, never: []Effect{GraphTerminate{}, GraphAccept{}}},
		{name: "no agent, then Meta's terminate",
			steps: []any{Begin{When: at(0)}, Prepared{When: at(0)}, MetaTerminate{When: at(1), Status: "COMPLETED", Duration: -1}},
			state: StateFinal, outcome: call.Missed, reason: call.NoAgent},
		{name: "ring timeout", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1}, TimerFired{When: at(25), Timer: TimerRing}},
			state: StateEnded, outcome: call.Missed, reason: call.RingTimeout, want: []Effect{GraphReject{}}},
		{name: "the caller hangs up while it rings",
			steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1}, MetaTerminate{When: at(7), Status: "COMPLETED", Duration: -1}},
			state: StateFinal, outcome: call.Missed, reason: call.UserHangup,
			want: []Effect{StopTimer{Timer: TimerRing}, Notify{What: NoticeEnded}}, never: []Effect{GraphReject{}, StartWhatsAppMedia{}}},
		{name: "every agent declines",
			steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1}, AgentDecline{When: at(2), Agent: "ann"}},
			state: StateEnded, outcome: call.Missed, reason: call.AgentRejected,
			want: []Effect{Notify{What: NoticeDeclinedAck, Agent: "ann"}, GraphReject{}}},
		{name: "one of two agents declines", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 2}, AgentDecline{When: at(2), Agent: "ann", Others: 1}},
			state: StateRinging, never: []Effect{GraphReject{}}},
		{name: "pre_accept fails", steps: []any{Begin{When: at(0)}, PrepareFailed{When: at(0), Code: 100}},
			state: StateEnded, outcome: call.Failed, reason: call.SetupFailed, code: 100, want: []Effect{GraphReject{}}},
		{name: "accept refused with 138007",
			steps: append(uicConnected()[:6], AcceptFailed{When: at(5), Code: 138007}),
			state: StateEnded, outcome: call.Failed, reason: call.MetaError, code: 138007,
			want: []Effect{GraphReject{}}, never: []Effect{StartWhatsAppMedia{}, ArmWatchdog{}}},
		{name: "the agent leg never comes up",
			steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1}, AgentAccept{When: at(3), Agent: "ann", Available: true},
				Claimed{When: at(3), Agent: "ann", Won: true}, TimerFired{When: at(23), Timer: TimerAgentGrace}},
			state: StateEnded, outcome: call.Missed, reason: call.AgentLost, want: []Effect{GraphReject{}}},
		{name: "the agent leg drops and comes back",
			steps: ans(AgentLegChanged{When: at(6), Leg: LegUp}, AgentLegChanged{When: at(10), Leg: LegDown},
				AgentCommand{When: at(12), Agent: "ann", Kind: CmdResume}, AgentLegChanged{When: at(14), Leg: LegUp},
				TimerFired{When: at(30), Timer: TimerAgentGrace}),
			state: StateConnected, want: []Effect{OfferAgentLeg{}, StopTimer{Timer: TimerAgentGrace}}},
		{name: "a stale connect is recorded, not acted on", steps: []any{Begin{When: at(0), Stale: true}},
			state: StateFinal, outcome: call.Missed, reason: call.Stale, want: []Effect{Finalize{}},
			never: []Effect{PrepareInbound{}, GraphReject{}, GraphTerminate{}}},
		{name: "drained while ringing", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1}, Drain{When: at(3)}},
			state: StateEnded, outcome: call.Missed, reason: call.Drained, want: []Effect{GraphReject{}}},
		{name: "the WhatsApp leg fails while connected", steps: ans(WhatsAppLegFailed{When: at(9)}),
			state: StateEnded, outcome: call.Answered, reason: call.MediaTimeout, want: []Effect{GraphTerminate{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fx := run(t, uic(), tt.steps...)
			check(t, c, fx, tt.state, tt.outcome, tt.reason, tt.code, tt.want, tt.never)
		})
	}
}

func check(t *testing.T, c Call, fx []Effect, state State, o call.Outcome, r call.EndReason, code int, want, never []Effect) {
	t.Helper()
	if c.State != state {
		t.Errorf("state %v, want %v", c.State, state)
	}
	if state == StateEnded || state == StateFinal {
		if c.Rec.Outcome != o || c.Rec.EndReason != r {
			t.Errorf("outcome %v/%v, want %v/%v", c.Rec.Outcome, c.Rec.EndReason, o, r)
		}
		if c.Rec.EndedAt.IsZero() {
			t.Error("no end time")
		}
	}
	if c.Rec.ErrorCode != code {
		t.Errorf("error code %d, want %d", c.Rec.ErrorCode, code)
	}
	for _, w := range want {
		if !has(fx, w) {
			t.Errorf("missing effect %#v in %s", w, fxString(fx))
		}
	}
	for _, n := range never {
		if has(fx, n) {
			t.Errorf("unexpected effect %#v in %s", n, fxString(fx))
		}
	}
	if n := count(fx, Finalize{}); n > 1 {
		t.Errorf("Finalize %d times", n)
	}
}

func fxString(fx []Effect) string {
	s := ""
	for _, f := range fx {
		s += fmt.Sprintf("%T%+v ", f, f)
	}
	return s
}

// No RTP toward WhatsApp and no watchdog before accept returns 200.
func TestUserInitiatedNoMediaBeforeAccept(t *testing.T) {
	steps := uicConnected()
	c := uic()
	for i, s := range steps {
		next, fx, err := rules.Transition(c, s.(Event))
		if err != nil {
			t.Fatal(err)
		}
		c = next
		last := i == len(steps)-1
		if has(fx, StartWhatsAppMedia{}) != last || has(fx, ArmWatchdog{}) != last {
			t.Fatalf("step %d (%T): media/watchdog effects %s", i, s, fxString(fx))
		}
		if last && index(fx, StartWhatsAppMedia{}) > index(fx, ArmWatchdog{}) {
			t.Fatal("watchdog armed before media starts")
		}
	}
	if c.Rec.AnsweredAt != t0.Add(5*time.Second) {
		t.Fatalf("answered at %v", c.Rec.AnsweredAt)
	}
}

func TestAgentCommandErrors(t *testing.T) {
	ringing := []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 2}}
	taken := append(ringing, AgentAccept{When: at(1), Agent: "ann", Available: true}, Claimed{When: at(1), Agent: "ann", Won: true})
	tests := []struct {
		name  string
		steps []any
		ev    Event
		want  error
	}{
		{"accept while setting up", []any{Begin{When: at(0)}}, AgentAccept{Agent: "ann", Available: true}, ErrOutOfTurn},
		{"accept while away", ringing, AgentAccept{Agent: "ann"}, ErrNotAvailable},
		{"accept a taken call", taken, AgentAccept{Agent: "bob", Available: true}, ErrCallTaken},
		{"accept one's own call again", taken, AgentAccept{Agent: "ann", Available: true}, ErrOutOfTurn},
		{"lose the claim", ringing, Claimed{Agent: "bob"}, ErrCallTaken},
		{"answer before accepting", ringing, AgentAnswer{Agent: "ann"}, ErrOutOfTurn},
		{"hang up another's call", taken, AgentHangup{Agent: "bob"}, ErrNotYourCall},
		{"answer twice", append(taken, AgentAnswer{Agent: "ann"}, AgentAnswerApplied{}), AgentAnswer{Agent: "ann"}, ErrOutOfTurn},
		{"dtmf before connected", taken, AgentCommand{Agent: "ann", Kind: CmdDTMF}, ErrOutOfTurn},
		{"decline a taken call", taken, AgentDecline{Agent: "bob"}, ErrOutOfTurn},
		{"hang up an ended call", append(taken, AgentHangup{Agent: "ann"}), AgentHangup{Agent: "ann"}, ErrCallEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := run(t, uic(), tt.steps...)
			run(t, c, stepT{ev: tt.ev, wantErr: tt.want})
		})
	}
}

func TestBusinessInitiatedLifecycle(t *testing.T) {
	pickup := t0.Add(8 * time.Second)
	accepted := MetaStatus{When: at(9), Status: UserAccepted, Stamp: pickup}
	ringing := MetaStatus{When: at(2), Status: UserRinging}
	rejected := MetaStatus{When: at(6), Status: UserRejected}
	connect := MetaConnect{When: at(1)}
	answeredEnd := MetaTerminate{When: at(70), Status: "COMPLETED", Start: pickup, End: pickup.Add(61 * time.Second), Duration: 61}
	noPickup := MetaTerminate{When: at(30), Status: "COMPLETED", Duration: -1}
	connected := UsePermission{Use: UseOutboundConnected}
	tests := []struct {
		name        string
		steps       []any
		state       State
		outcome     call.Outcome
		reason      call.EndReason
		code        int
		want, never []Effect
		uses        int // UseOutboundConnected effects
	}{
		{name: "connect webhook is not pickup", steps: []any{Begin{When: at(0)}, connect, ringing},
			state: StateDialing, want: []Effect{ApplyMetaAnswer{}},
			never: []Effect{StartWhatsAppMedia{}, ArmWatchdog{}, connected, OpenServiceWindow{}}},
		{name: "picked up, talks 61 s", steps: []any{Begin{When: at(0)}, connect, ringing, accepted, answeredEnd},
			state: StateFinal, outcome: call.Answered, reason: call.UserHangup, uses: 1,
			want: []Effect{StartWhatsAppMedia{}, ArmWatchdog{}, OpenServiceWindow{}, StopTimer{Timer: TimerRingCeiling}, Finalize{}}},
		{name: "ACCEPTED before connect", steps: []any{Begin{When: at(0)}, accepted, connect, answeredEnd},
			state: StateFinal, outcome: call.Answered, reason: call.UserHangup, uses: 1, want: []Effect{ApplyMetaAnswer{}}},
		{name: "terminate before anything, with start_time", steps: []any{Begin{When: at(0)}, answeredEnd, connect, accepted},
			state: StateFinal, outcome: call.Answered, reason: call.UserHangup, uses: 1, never: []Effect{ApplyMetaAnswer{}}},
		{name: "duplicate ACCEPTED", steps: []any{Begin{When: at(0)}, connect, accepted, accepted, answeredEnd},
			state: StateFinal, outcome: call.Answered, reason: call.UserHangup, uses: 1},
		{name: "declined", steps: []any{Begin{When: at(0)}, connect, ringing, rejected, noPickup},
			state: StateFinal, outcome: call.Declined, reason: call.UserDeclined,
			want:  []Effect{UsePermission{Use: UseOutboundDeclined}, CloseMedia{}},
			never: []Effect{GraphTerminate{}, connected}},
		{name: "declined, terminate first", steps: []any{Begin{When: at(0)}, connect, noPickup, rejected},
			state: StateFinal, outcome: call.Unanswered, reason: call.UserNoAnswer,
			want: []Effect{UsePermission{Use: UseOutboundUnanswered}}},
		{name: "not answered: Meta ends it", steps: []any{Begin{When: at(0)}, connect, ringing, noPickup},
			state: StateFinal, outcome: call.Unanswered, reason: call.UserNoAnswer,
			want: []Effect{UsePermission{Use: UseOutboundUnanswered}}, never: []Effect{connected, GraphTerminate{}}},
		{name: "not answered: our ring ceiling", steps: []any{Begin{When: at(0)}, connect, ringing, TimerFired{When: at(60), Timer: TimerRingCeiling}, noPickup},
			state: StateFinal, outcome: call.Unanswered, reason: call.UserNoAnswer,
			want: []Effect{GraphTerminate{}, UsePermission{Use: UseOutboundUnanswered}}},
		{name: "our ceiling, but Meta says it was picked up",
			steps: []any{Begin{When: at(0)}, connect, TimerFired{When: at(60), Timer: TimerRingCeiling}, answeredEnd},
			state: StateFinal, outcome: call.Answered, reason: call.UserNoAnswer, uses: 1,
			never: []Effect{UsePermission{Use: UseOutboundUnanswered}}},
		{name: "Meta error at value.errors, never picked up",
			steps: []any{Begin{When: at(0)}, connect, MetaTerminate{When: at(5), Status: "FAILED", Duration: -1, Errors: []int{138020}}},
			state: StateFinal, outcome: call.Failed, reason: call.MetaError, code: 138020,
			never: []Effect{UsePermission{Use: UseOutboundUnanswered}, connected}},
		{name: "the agent cancels before pickup", steps: []any{Begin{When: at(0)}, connect, AgentHangup{When: at(5), Agent: "ann"}, noPickup},
			state: StateFinal, outcome: call.Unanswered, reason: call.AgentHangup, want: []Effect{GraphTerminate{}},
			never: []Effect{UsePermission{Use: UseOutboundUnanswered}}},
		{name: "Meta's answer cannot be applied", steps: []any{Begin{When: at(0)}, connect, MetaAnswerFailed{When: at(1)}},
			state: StateEnded, outcome: call.Failed, reason: call.SetupFailed, want: []Effect{GraphTerminate{}}},
		{name: "REJECTED after ACCEPTED is ignored", steps: []any{Begin{When: at(0)}, accepted, rejected},
			state: StateConnected, uses: 1},
		{name: "the agent hangs up after 61 s; terminate never comes",
			steps: []any{Begin{When: at(0)}, connect, accepted, AgentHangup{When: at(69), Agent: "ann"}, TimerFired{When: at(79), Timer: TimerMetaWait}},
			state: StateFinal, outcome: call.Answered, reason: call.AgentHangup, uses: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fx := run(t, bic(), tt.steps...)
			check(t, c, fx, tt.state, tt.outcome, tt.reason, tt.code, tt.want, tt.never)
			if n := count(fx, connected); n != tt.uses {
				t.Errorf("connected-call uses %d, want %d", n, tt.uses)
			}
			if tt.outcome == call.Answered && !c.Rec.AnsweredAt.Equal(pickup) && c.Rec.MetaStart.IsZero() {
				t.Errorf("answered at %v, want Meta's %v", c.Rec.AnsweredAt, pickup)
			}
		})
	}
}

// Every permutation of a business-initiated call's webhooks ends the same way.
func TestBusinessInitiatedAnyOrder(t *testing.T) {
	pickup := t0.Add(8 * time.Second)
	evs := []Event{
		MetaConnect{When: at(1)},
		MetaStatus{When: at(2), Status: UserRinging},
		MetaStatus{When: at(9), Status: UserAccepted, Stamp: pickup},
		MetaTerminate{When: at(70), Status: "COMPLETED", Start: pickup, End: pickup.Add(61 * time.Second), Duration: 61},
	}
	for _, perm := range permutations(len(evs)) {
		steps := []any{Begin{When: at(0)}}
		for _, i := range perm {
			steps = append(steps, evs[i], evs[i]) // every event twice
		}
		c, fx := run(t, bic(), steps...)
		if c.State != StateFinal || c.Rec.Outcome != call.Answered || c.Rec.MetaDuration != 61 {
			t.Errorf("order %v: %v %v %d", perm, c.State, c.Rec.Outcome, c.Rec.MetaDuration)
		}
		if n := count(fx, UsePermission{Use: UseOutboundConnected}); n != 1 {
			t.Errorf("order %v: %d connected uses", perm, n)
		}
		if n := count(fx, Finalize{}); n != 1 {
			t.Errorf("order %v: %d finalize", perm, n)
		}
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func TestConclude(t *testing.T) {
	start := t0
	tests := []struct {
		name string
		c    Call
		o    call.Outcome
		r    call.EndReason
	}{
		{"uic answered, agent hangup", Call{Rec: call.Record{Direction: call.UserInitiated}, PickedUp: true, Cause: CauseAgentHangup}, call.Answered, call.AgentHangup},
		{"uic missed, ring timeout", Call{Rec: call.Record{Direction: call.UserInitiated}, Cause: CauseRingTimeout}, call.Missed, call.RingTimeout},
		{"uic terminate 138019 before accept", Call{Rec: call.Record{Direction: call.UserInitiated, ErrorCode: 138019}, Cause: CauseMeta}, call.Failed, call.MetaError},
		{"uic terminate with start_time but no accept seen", Call{Rec: call.Record{Direction: call.UserInitiated, MetaStart: start}, Cause: CauseOwnerLost}, call.Answered, call.OwnerLost},
		{"bic connect only, Meta ends", Call{Rec: call.Record{Direction: call.BusinessInitiated, MetaDuration: -1}, MetaAnswer: true, Cause: CauseMeta}, call.Unanswered, call.UserNoAnswer},
		{"bic duration only", Call{Rec: call.Record{Direction: call.BusinessInitiated, MetaDuration: 45}, Cause: CauseMeta}, call.Answered, call.UserHangup},
		{"bic 138022 while talking", Call{Rec: call.Record{Direction: call.BusinessInitiated, ErrorCode: 138022}, PickedUp: true, Cause: CauseMeta}, call.Answered, call.MediaTimeout},
		{"bic 138023", Call{Rec: call.Record{Direction: call.BusinessInitiated, ErrorCode: 138023, MetaStart: start}, Cause: CauseMeta}, call.Answered, call.MediaTimeout},
		{"bic rejected", Call{Rec: call.Record{Direction: call.BusinessInitiated}, User: UserRejected, Cause: CauseMeta}, call.Declined, call.UserDeclined},
		{"bic 131044 no payment", Call{Rec: call.Record{Direction: call.BusinessInitiated, ErrorCode: 131044}, Cause: CauseMeta}, call.Failed, call.MetaError},
		{"bic owner lost before pickup", Call{Rec: call.Record{Direction: call.BusinessInitiated}, Cause: CauseOwnerLost}, call.Unanswered, call.OwnerLost},
		{"bic stale drained", Call{Rec: call.Record{Direction: call.BusinessInitiated}, Cause: CauseDrained}, call.Unanswered, call.Drained},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, r := Conclude(tt.c)
			if o != tt.o || r != tt.r {
				t.Fatalf("got %v/%v, want %v/%v", o, r, tt.o, tt.r)
			}
		})
	}
}

// A call ended because media failed asks media why (before it is closed)
// and keeps the answer in its record.
func TestMediaDiagnosisInRecord(t *testing.T) {
	for _, tc := range []struct {
		ev    Event
		agent bool
		want  string
	}{
		{MediaTimeout{When: at(40)}, false, "whatsapp:media_stopped"},
		{TimerFired{When: at(40), Timer: TimerAgentGrace}, true, "agent:nothing_from_peer"},
	} {
		steps := append(uicConnected(), AgentLegChanged{When: at(20), Leg: LegDown}, tc.ev)
		c, fx := run(t, uic(), steps...)
		d, ok := DiagnoseMedia{Agent: tc.agent}, false
		for i, f := range fx {
			if f == d {
				ok = index(fx[i:], CloseMedia{}) > 0
			}
		}
		if !ok {
			t.Fatalf("%T: no diagnosis before media closes: %s", tc.ev, fxString(fx))
		}
		cause := strings.TrimPrefix(tc.want, "whatsapp:")
		cause = strings.TrimPrefix(cause, "agent:")
		leg := strings.TrimSuffix(tc.want, ":"+cause)
		c, _ = run(t, c, MediaDiagnosed{When: at(41), Leg: leg, Cause: cause}, TimerFired{When: at(50), Timer: TimerMetaWait})
		if c.Rec.MediaFailure != tc.want || c.State != StateFinal {
			t.Fatalf("%T: record %q state %v", tc.ev, c.Rec.MediaFailure, c.State)
		}
	}
	// An end that is not about media asks nothing.
	_, fx := run(t, uic(), append(uicConnected(), AgentHangup{When: at(9), Agent: "ann"})...)
	if has(fx, DiagnoseMedia{}) || has(fx, DiagnoseMedia{Agent: true}) {
		t.Fatal("diagnosis of a normal hang-up")
	}
}
