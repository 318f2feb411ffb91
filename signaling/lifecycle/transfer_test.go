package lifecycle

import (
	"testing"
	"time"

	"github.com/callgw/callgw/call"
)

func TestHoldAndTransfer(t *testing.T) {
	ans := func(extra ...any) []any { return append(uicConnected(), extra...) }
	blind := func(targets ...string) TransferRequest {
		return TransferRequest{When: at(10), Agent: "ann", Mode: TransferBlind, Targets: targets}
	}
	warm := TransferRequest{When: at(10), Agent: "ann", Mode: TransferWarm, Targets: []string{"bob"}}
	tests := []struct {
		name      string
		steps     []any
		state     State
		agent     string
		hold      bool
		phase     TransferPhase
		handlers  []string // agents, in order
		closedAt  []int    // seconds of each handler's end (0: open)
		want      []Effect
		never     []Effect
		wantTimer bool
	}{
		{name: "hold then resume", steps: ans(HoldRequest{When: at(10), Agent: "ann", On: true}, HoldRequest{When: at(20), Agent: "ann", On: false}),
			state: StateConnected, agent: "ann", want: []Effect{SetHold{On: true}, SetHold{On: false}}, handlers: []string{"ann"}, closedAt: []int{0}},
		{name: "hold twice is one hold", steps: ans(HoldRequest{When: at(10), Agent: "ann", On: true}, HoldRequest{When: at(11), Agent: "ann", On: true}),
			state: StateConnected, agent: "ann", hold: true, want: []Effect{SetHold{On: true}}},
		{name: "hold by another agent is refused",
			steps: ans(stepT{ev: HoldRequest{When: at(10), Agent: "bob", On: true}, wantErr: ErrNotYourCall}),
			state: StateConnected, agent: "ann", never: []Effect{SetHold{On: true}}},
		{name: "hold while ringing is refused",
			steps: []any{Begin{When: at(0)}, Prepared{When: at(0), Available: 1}, stepT{ev: HoldRequest{When: at(1), Agent: "ann", On: true}, wantErr: ErrOutOfTurn}},
			state: StateRinging},
		{name: "transfer to yourself only is refused",
			steps: ans(stepT{ev: blind("ann"), wantErr: ErrNoTarget}), state: StateConnected, agent: "ann", never: []Effect{SetHold{On: true}}},
		{name: "blind: the caller holds while bob rings",
			steps: ans(blind("bob")), state: StateConnected, agent: "ann", hold: true, phase: TransferRinging,
			want: []Effect{SetHold{On: true}, told(TransferOffered), StartTimer{Timer: TimerTransfer, After: rules.RingTimeout}}},
		{name: "blind: bob takes it, a new agent leg, off hold when it is up",
			steps: ans(blind("bob"), TransferAccept{When: at(15), Agent: "bob"}, AgentAnswer{When: at(16), Agent: "bob"},
				AgentAnswerApplied{When: at(16)}, AgentLegChanged{When: at(17), Leg: LegConnecting}, AgentLegChanged{When: at(17), Leg: LegUp}),
			state: StateConnected, agent: "bob", handlers: []string{"ann", "bob"}, closedAt: []int{15, 0},
			want:  []Effect{told(TransferTaken), told(TransferHandedOff), OfferAgentLeg{}, SetHold{On: false}},
			never: []Effect{GraphAccept{}}},
		{name: "blind: a stranger cannot take it",
			steps: ans(blind("bob"), stepT{ev: TransferAccept{When: at(15), Agent: "cid"}, wantErr: ErrCallTaken}),
			state: StateConnected, agent: "ann", hold: true, phase: TransferRinging},
		{name: "blind: no answer, back to ann off hold",
			steps: ans(blind("bob"), TimerFired{When: at(35), Timer: TimerTransfer}),
			state: StateConnected, agent: "ann", want: []Effect{told(TransferEnded), SetHold{On: false}},
			handlers: []string{"ann"}},
		{name: "blind: a team, both decline, back to ann",
			steps: ans(blind("bob", "cid"), TransferDecline{When: at(12), Agent: "bob"}, TransferDecline{When: at(13), Agent: "cid"}),
			state: StateConnected, agent: "ann", want: []Effect{told(TransferEnded), SetHold{On: false}}},
		{name: "blind: held before, cancel keeps the hold",
			steps: ans(HoldRequest{When: at(9), Agent: "ann", On: true}, blind("bob"), TransferCancel{When: at(12), Agent: "ann"}),
			state: StateConnected, agent: "ann", hold: true, never: []Effect{SetHold{On: false}}},
		{name: "blind: ann leaves while bob rings; nobody answers: the caller waits in the queue",
			steps: ans(blind("bob"), AgentHangup{When: at(12), Agent: "ann"}, AgentLegChanged{When: at(12), Leg: LegDown},
				TimerFired{When: at(35), Timer: TimerTransfer}),
			state: StateWaiting, handlers: []string{"ann"}, closedAt: []int{12},
			want:  []Effect{CloseAgentLeg{}, SetHold{On: false}, ReleaseClaim{}, BeginWait{}},
			never: []Effect{StartTimer{Timer: TimerAgentGrace, After: rules.AgentGrace}, GraphTerminate{}, GraphAccept{}}},
		{name: "requeued after a lost transfer, carol takes it: no second accept",
			steps: ans(blind("bob"), AgentHangup{When: at(12), Agent: "ann"}, TimerFired{When: at(35), Timer: TimerTransfer},
				AgentAccept{When: at(40), Agent: "carol", Available: true}, Claimed{When: at(40), Agent: "carol", Won: true},
				AgentAnswer{When: at(41), Agent: "carol"}, AgentAnswerApplied{When: at(41)}),
			state: StateConnected, agent: "carol", handlers: []string{"ann", "carol"}, closedAt: []int{12, 0},
			want:  []Effect{EndWait{}, OfferAgentLeg{}, StopPlayback{}},
			never: []Effect{GraphAccept{}, GraphTerminate{}}},
		{name: "blind: ann leaves, bob takes it",
			steps: ans(blind("bob"), AgentHangup{When: at(12), Agent: "ann"}, TransferAccept{When: at(14), Agent: "bob"}),
			state: StateConnected, agent: "bob", hold: true, phase: TransferConnecting, handlers: []string{"ann", "bob"}, closedAt: []int{12, 0},
			never: []Effect{GraphTerminate{}}},
		{name: "warm: consult, then complete",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, ConsultCommand{When: at(13), Agent: "bob", Answer: true},
				ConsultCommand{When: at(13), Agent: "bob"}, TransferComplete{When: at(30), Agent: "ann", SideUp: true}),
			state: StateConnected, agent: "bob", handlers: []string{"ann", "bob"}, closedAt: []int{30, 0},
			want:  []Effect{OfferConsult{}, ApplyConsultAnswer{}, ForwardConsultICE{}, PromoteConsult{}, SetHold{On: false}},
			never: []Effect{OfferAgentLeg{}, CloseConsult{}}},
		{name: "warm: complete before the consult leg is up is refused",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, stepT{ev: TransferComplete{When: at(13), Agent: "ann"}, wantErr: ErrOutOfTurn}),
			state: StateConnected, agent: "ann", hold: true, phase: TransferConsulting},
		{name: "warm: only ann completes",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, stepT{ev: TransferComplete{When: at(13), Agent: "bob", SideUp: true}, wantErr: ErrNotYourCall}),
			state: StateConnected, agent: "ann", hold: true, phase: TransferConsulting},
		{name: "warm: cancel closes the consult, caller back to ann",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, TransferCancel{When: at(20), Agent: "ann"}),
			state: StateConnected, agent: "ann", want: []Effect{CloseConsult{}, SetHold{On: false}}, never: []Effect{PromoteConsult{}}},
		{name: "warm: the consult leg fails, back to ann",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, ConsultLegChanged{When: at(20), Leg: LegDown}),
			state: StateConnected, agent: "ann", want: []Effect{CloseConsult{}, SetHold{On: false}}},
		{name: "warm: a stranger's consult answer is refused",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, stepT{ev: ConsultCommand{When: at(13), Agent: "cid", Answer: true}, wantErr: ErrNotYourCall}),
			state: StateConnected, agent: "ann", hold: true, phase: TransferConsulting},
		{name: "the caller hangs up during a consult: targets told, consult closed",
			steps: ans(warm, TransferAccept{When: at(12), Agent: "bob"}, MetaTerminate{When: at(20), Status: "COMPLETED", Start: t0.Add(5 * time.Second), End: t0.Add(20 * time.Second), Duration: 15}),
			state: StateFinal, hold: true, handlers: []string{"ann"}, closedAt: []int{20},
			want: []Effect{told(TransferEnded), CloseConsult{}, CloseMedia{}}},
		{name: "a second transfer while one rings is refused",
			steps: ans(blind("bob"), stepT{ev: blind("cid"), wantErr: ErrOutOfTurn}),
			state: StateConnected, agent: "ann", hold: true, phase: TransferRinging},
		{name: "hold during a transfer is refused",
			steps: ans(blind("bob"), stepT{ev: HoldRequest{When: at(11), Agent: "ann", On: false}, wantErr: ErrOutOfTurn}),
			state: StateConnected, agent: "ann", hold: true, phase: TransferRinging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pre := len(uicConnected())
			if len(tc.steps) < pre || tc.state == StateRinging {
				pre = 0
			}
			c, _ := run(t, uic(), tc.steps[:pre]...)
			c, fx := run(t, c, tc.steps[pre:]...)
			if c.State != tc.state {
				t.Fatalf("state %v, want %v", c.State, tc.state)
			}
			if tc.agent != "" && c.Agent != tc.agent {
				t.Fatalf("agent %q, want %q", c.Agent, tc.agent)
			}
			if c.OnHold != tc.hold {
				t.Fatalf("on hold %v, want %v", c.OnHold, tc.hold)
			}
			if c.Transfer.Phase != tc.phase {
				t.Fatalf("transfer phase %v, want %v", c.Transfer.Phase, tc.phase)
			}
			for _, e := range tc.want {
				if tt, ok := e.(TellTransfer); ok {
					if !hasTell(fx, tt.What) {
						t.Errorf("missing TellTransfer %v", tt.What)
					}
					continue
				}
				if !has(fx, e) {
					t.Errorf("missing effect %#v", e)
				}
			}
			for _, e := range tc.never {
				if has(fx, e) {
					t.Errorf("unexpected effect %#v", e)
				}
			}
			if tc.handlers != nil {
				checkHandlers(t, c.Rec.Handlers, tc.handlers, tc.closedAt)
			}
		})
	}
}

func checkHandlers(t *testing.T, got []call.Handler, agents []string, closedAt []int) {
	t.Helper()
	if len(got) != len(agents) {
		t.Fatalf("handlers %+v, want %v", got, agents)
	}
	for i, h := range got {
		if h.Agent != agents[i] {
			t.Fatalf("handler %d is %q, want %q", i, h.Agent, agents[i])
		}
		if i < len(closedAt) {
			want := time.Time{}
			if closedAt[i] != 0 {
				want = t0.Add(time.Duration(closedAt[i]) * time.Second)
			}
			if !h.To.Equal(want) {
				t.Fatalf("handler %d (%s) ends %v, want %v", i, h.Agent, h.To, want)
			}
		}
	}
}

func TestHandlersOfPlainCalls(t *testing.T) {
	c, _ := run(t, uic(), append(uicConnected(), AgentHangup{When: at(40), Agent: "ann"})...)
	checkHandlers(t, c.Rec.Handlers, []string{"ann"}, []int{40})
	if c.Rec.Handlers[0].From != t0.Add(3*time.Second) || c.Rec.Handlers[0].Seconds() != 37 {
		t.Fatalf("handler %+v", c.Rec.Handlers[0])
	}
	o, _ := run(t, bic(), Begin{When: at(0)}, MetaStatus{When: at(5), Status: UserAccepted}, AgentHangup{When: at(20), Agent: "ann"})
	checkHandlers(t, o.Rec.Handlers, []string{"ann"}, []int{20})
}

func TestTransferNames(t *testing.T) {
	for _, m := range []TransferMode{TransferBlind, TransferWarm} {
		if ParseTransferMode(m.String()) != m {
			t.Fatalf("mode %v does not round-trip", m)
		}
	}
	if ParseTransferMode("cold") != 0 || TransferMode(9).String() != "none" {
		t.Fatal("bad mode accepted")
	}
	if TransferConsulting.String() != "consulting" || TransferPhase(9).String() != "none" || TransferEnded.String() != "ended" {
		t.Fatal("names")
	}
}

// told matches any TellTransfer of what (see hasTell).
func told(what TransferNotice) TellTransfer { return TellTransfer{What: what} }

func hasTell(fx []Effect, what TransferNotice) bool {
	for _, f := range fx {
		if tt, ok := f.(TellTransfer); ok && tt.What == what {
			return true
		}
	}
	return false
}

func TestTellCarriesTheTransferAsItWas(t *testing.T) {
	c, _ := run(t, uic(), uicConnected()...)
	c, fx := run(t, c, TransferRequest{When: at(10), Agent: "ann", Mode: TransferBlind, Targets: []string{"bob", "cid"}},
		TimerFired{When: at(35), Timer: TimerTransfer})
	if c.Transfer.Active() {
		t.Fatal("still transferring")
	}
	want := TellTransfer{What: TransferEnded, Mode: TransferBlind, From: "ann", Targets: "bob,cid"}
	if !has(fx, want) {
		t.Fatalf("no %+v in %+v", want, fx)
	}
}

func TestLostBlindTransferOfAnOutboundCallEnds(t *testing.T) {
	c, _ := run(t, bic(), Begin{When: at(0)}, MetaStatus{When: at(5), Status: UserAccepted})
	c, fx := run(t, c, TransferRequest{When: at(10), Agent: "ann", Mode: TransferBlind, Targets: []string{"bob"}},
		AgentHangup{When: at(12), Agent: "ann"}, TimerFired{When: at(35), Timer: TimerTransfer})
	if c.State != StateEnded || c.Rec.EndReason != call.AgentLost || has(fx, BeginWait{}) {
		t.Fatalf("state %v reason %v", c.State, c.Rec.EndReason)
	}
}
