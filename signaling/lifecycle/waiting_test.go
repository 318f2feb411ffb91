package lifecycle

import (
	"testing"
	"time"

	"github.com/callgw/callgw/call"
)

// uicWaiting walks a user-initiated call to waiting: nobody free, callgw
// accepts it itself.
func uicWaiting() []any {
	return []any{Begin{When: at(0)}, Prepared{When: at(0), Wait: true}, AcceptDone{When: at(1)}}
}

// TestWaitingLifecycle: calls callgw answers itself so the caller waits.
func TestQueueWaitingLifecycle(t *testing.T) {
	w := func(extra ...any) []any { return append(uicWaiting(), extra...) }
	take := []any{AgentAccept{When: at(30), Agent: "ann", Available: true}, Claimed{When: at(30), Agent: "ann", Won: true},
		AgentAnswer{When: at(31), Agent: "ann"}, AgentAnswerApplied{When: at(31)}}
	hangup := MetaTerminate{When: at(40), Status: "COMPLETED", Start: t0.Add(time.Second), End: t0.Add(40 * time.Second), Duration: 39}
	tests := []struct {
		name        string
		steps       []any
		state       State
		outcome     call.Outcome
		reason      call.EndReason
		code        int
		want, never []Effect
	}{
		{name: "nobody free: callgw accepts and the caller waits", steps: uicWaiting(), state: StateWaiting,
			want:  []Effect{PrepareInbound{}, GraphAccept{}, StartWhatsAppMedia{}, ArmWatchdog{}, BeginWait{}, UsePermission{Use: UseInboundConnected}},
			never: []Effect{Notify{What: NoticeOffered}, StartTimer{Timer: TimerRing, After: rules.RingTimeout}, GraphReject{}}},
		{name: "accept under way: nothing flows yet", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Wait: true}},
			state: StateWaiting, want: []Effect{GraphAccept{}}, never: []Effect{StartWhatsAppMedia{}, ArmWatchdog{}, BeginWait{}}},
		{name: "an agent takes it: agent leg, no second accept", steps: w(take...), state: StateConnected,
			want:  []Effect{EndWait{}, OfferAgentLeg{}, ApplyAgentAnswer{}, StopPlayback{}, Notify{What: NoticeTaken}},
			never: []Effect{GraphReject{}}},
		{name: "an agent takes it, the caller hangs up later: answered", steps: w(append(take, hangup)...), state: StateFinal,
			outcome: call.Answered, reason: call.UserHangup},
		{name: "the caller hangs up while waiting: missed, abandoned", steps: w(hangup), state: StateFinal,
			outcome: call.Missed, reason: call.QueueAbandoned, want: []Effect{EndWait{}, CloseMedia{}, Finalize{}},
			never: []Effect{GraphReject{}, GraphTerminate{}}},
		{name: "max_wait with no overflow: missed, terminated", steps: w(LeaveWait{When: at(90), Cause: CauseQueueTimeout}),
			state: StateEnded, outcome: call.Missed, reason: call.QueueTimeout,
			want: []Effect{GraphTerminate{}, EndWait{}, StartTimer{Timer: TimerMetaWait, After: rules.MetaWait}}, never: []Effect{GraphReject{}}},
		{name: "max_wait, then Meta's terminate: still missed", steps: w(LeaveWait{When: at(90)}, hangup), state: StateFinal,
			outcome: call.Missed, reason: call.QueueTimeout},
		{name: "queue full: missed", steps: w(LeaveWait{When: at(2), Cause: CauseQueueFull}), state: StateEnded,
			outcome: call.Missed, reason: call.QueueFull},
		{name: "nobody free and the queue full: rejected, queue_full", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), QueueFull: true}},
			state: StateEnded, outcome: call.Missed, reason: call.QueueFull, want: []Effect{GraphReject{}}, never: []Effect{GraphAccept{}}},
		{name: "a decline while waiting keeps it waiting",
			steps: w(AgentDecline{When: at(5), Agent: "ann"}), state: StateWaiting,
			want: []Effect{Notify{What: NoticeDeclinedAck, Agent: "ann"}}, never: []Effect{GraphTerminate{}}},
		{name: "ring timer does not end a waiting call", steps: w(TimerFired{When: at(30), Timer: TimerRing}), state: StateWaiting},
		{name: "ringing, then it must wait", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1},
			StartWait{When: at(15)}, AcceptDone{When: at(16)}}, state: StateWaiting,
			want: []Effect{StopTimer{Timer: TimerRing}, GraphAccept{}, BeginWait{}}},
		{name: "accept refused while starting to wait: failed, rejected",
			steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Wait: true}, AcceptFailed{When: at(1), Code: 138007}},
			state: StateEnded, outcome: call.Failed, reason: call.MetaError, code: 138007, want: []Effect{GraphReject{}},
			never: []Effect{BeginWait{}, StartWhatsAppMedia{}}},
		{name: "the watchdog ends a waiting call: missed", steps: w(MediaTimeout{When: at(30)}), state: StateEnded,
			outcome: call.Missed, reason: call.MediaTimeout, want: []Effect{GraphTerminate{}}},
		{name: "Meta ends a waiting call with an error: failed",
			steps: w(MetaTerminate{When: at(30), Status: "FAILED", Errors: []int{138021}, Duration: 29}), state: StateFinal,
			outcome: call.Failed, reason: call.MediaTimeout, code: 138021},
		{name: "drained while waiting", steps: w(Drain{When: at(3)}), state: StateEnded, outcome: call.Missed, reason: call.Drained,
			want: []Effect{GraphTerminate{}}},
		{name: "LeaveWait outside waiting does nothing", steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1},
			LeaveWait{When: at(3)}}, state: StateRinging},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fx := run(t, uic(), tt.steps...)
			check(t, c, fx, tt.state, tt.outcome, tt.reason, tt.code, tt.want, tt.never)
		})
	}
}

// The caller's answer time is callgw's accept, and talk time runs from it.
func TestQueueWaitingAnsweredAt(t *testing.T) {
	c, _ := run(t, uic(), append(uicWaiting(), AgentAccept{When: at(30), Agent: "ann", Available: true},
		Claimed{When: at(30), Agent: "ann", Won: true}, AgentAnswer{When: at(31), Agent: "ann"}, AgentAnswerApplied{When: at(31)},
		AgentHangup{When: at(61), Agent: "ann"})...)
	if c.Rec.AnsweredAt != t0.Add(time.Second) {
		t.Fatalf("answered at %v, want callgw's accept", c.Rec.AnsweredAt)
	}
	if c.Rec.GatewayMillis != 60000 {
		t.Fatalf("gateway duration %d ms, want 60000", c.Rec.GatewayMillis)
	}
	if c.Rec.Outcome != call.Answered || c.Rec.Agent != "ann" {
		t.Fatalf("outcome %v agent %q", c.Rec.Outcome, c.Rec.Agent)
	}
}

func TestQueueWaitingCommandErrors(t *testing.T) {
	accepting := []any{Begin{When: at(0)}, Prepared{When: at(0), Wait: true}}
	taken := append(uicWaiting(), AgentAccept{When: at(3), Agent: "ann", Available: true}, Claimed{When: at(3), Agent: "ann", Won: true})
	tests := []struct {
		name  string
		steps []any
		ev    Event
		want  error
	}{
		{"accept while callgw's accept is under way", accepting, AgentAccept{Agent: "ann", Available: true}, ErrOutOfTurn},
		{"claim while callgw's accept is under way", accepting, Claimed{Agent: "ann", Won: true}, ErrOutOfTurn},
		{"accept while away", uicWaiting(), AgentAccept{Agent: "ann"}, ErrNotAvailable},
		{"accept a taken waiting call", taken, AgentAccept{Agent: "bob", Available: true}, ErrCallTaken},
		{"hang up a waiting call nobody took", uicWaiting(), AgentHangup{Agent: "ann"}, ErrOutOfTurn},
		{"dtmf on a waiting call", uicWaiting(), AgentCommand{Agent: "ann", Kind: CmdDTMF}, ErrOutOfTurn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := run(t, uic(), tt.steps...)
			run(t, c, stepT{ev: tt.ev, wantErr: tt.want})
		})
	}
}

func TestStateNames(t *testing.T) {
	for _, s := range []State{StateSetup, StateRinging, StateDialing, StateConnecting, StateConnected, StateEnded, StateFinal, StateWaiting} {
		if ParseState(s.String()) != s {
			t.Errorf("%v does not read back", s)
		}
	}
	if !StateWaiting.Live() || StateWaiting.AgentOwned() || !StateWaiting.Offered() {
		t.Error("waiting: live, offered, not agent-owned")
	}
	if StateEnded.Live() || StateFinal.Live() {
		t.Error("ended states are not live")
	}
}

// TestRingingThenWaiting: a call that may wait is queued instead of missed
// when nobody answers it while it rings.
func TestQueueRingingThenWaiting(t *testing.T) {
	ring := func(canWait bool, extra ...any) []any {
		return append([]any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1, CanWait: canWait}}, extra...)
	}
	tests := []struct {
		name    string
		steps   []any
		state   State
		outcome call.Outcome
		reason  call.EndReason
		want    []Effect
	}{
		{"ring timeout, may wait", ring(true, TimerFired{When: at(25), Timer: TimerRing}), StateWaiting, 0, 0, []Effect{GraphAccept{}}},
		{"ring timeout, may not wait", ring(false, TimerFired{When: at(25), Timer: TimerRing}), StateEnded, call.Missed, call.RingTimeout, []Effect{GraphReject{}}},
		{"every agent declined, may wait", ring(true, AgentDecline{When: at(2), Agent: "ann"}), StateWaiting, 0, 0, []Effect{GraphAccept{}}},
		{"nobody left to ring, may wait", ring(true, RingExhausted{When: at(30)}), StateWaiting, 0, 0, []Effect{StopTimer{Timer: TimerRing}, GraphAccept{}}},
		{"nobody left to ring", ring(false, RingExhausted{When: at(30)}), StateEnded, call.Missed, call.NoAgent, []Effect{GraphReject{}}},
		{"nobody left to ring after a decline", ring(false, AgentDecline{When: at(2), Agent: "ann", Others: 1}, RingExhausted{When: at(3)}),
			StateEnded, call.Missed, call.AgentRejected, []Effect{GraphReject{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fx := run(t, uic(), tt.steps...)
			check(t, c, fx, tt.state, tt.outcome, tt.reason, 0, tt.want, nil)
		})
	}
}
