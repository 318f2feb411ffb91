package signaling

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/webhook"
)

// The runner tests drive a real Controller on a real Redis with fakes for
// what it drives (Graph, media, hub) and a manual clock: every effect the
// lifecycle asks for reaches the right dependency, in order, and every
// timer runs on the injected clock.

type journal struct {
	mu    sync.Mutex
	lines []string
	ch    chan string
}

func newJournal() *journal { return &journal{ch: make(chan string, 256)} }

func (j *journal) add(s string) {
	j.mu.Lock()
	j.lines = append(j.lines, s)
	j.mu.Unlock()
	j.ch <- s
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

// wait returns once line has been journaled (or fails the test).
func (j *journal) wait(t *testing.T, line string) {
	t.Helper()
	if slices.Contains(j.all(), line) {
		return
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-j.ch:
			if got == line {
				return
			}
		case <-timeout:
			t.Fatalf("%q never happened; journal: %v", line, j.all())
		}
	}
}

type fakeGraph struct {
	j         *journal
	acceptErr error
}

func (g *fakeGraph) PreAccept(_ context.Context, id, _ string) error {
	g.j.add("graph:pre_accept")
	return nil
}
func (g *fakeGraph) Accept(_ context.Context, id, _, _ string) error {
	g.j.add("graph:accept")
	return g.acceptErr
}
func (g *fakeGraph) Reject(_ context.Context, id string) error { g.j.add("graph:reject"); return nil }
func (g *fakeGraph) Terminate(_ context.Context, id string) error {
	g.j.add("graph:terminate")
	return nil
}

type fakeMedia struct{ j *journal }

func (m fakeMedia) NewBridge(string, media.Events) (Bridge, error) { return fakeBridge(m), nil }

type fakeBridge struct{ j *journal }

const fakeSDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"

func (b fakeBridge) AnswerWhatsApp(context.Context, string) (string, error) { return fakeSDP, nil }
func (b fakeBridge) OfferWhatsApp(context.Context) (string, error)          { return fakeSDP, nil }
func (b fakeBridge) SetWhatsAppAnswer(string) error                         { b.j.add("media:meta_answer"); return nil }
func (b fakeBridge) OfferAgent(context.Context) (string, error) {
	b.j.add("media:agent_offer")
	return fakeSDP, nil
}
func (b fakeBridge) SetAgentAnswer(sdp string) error {
	if !strings.HasPrefix(sdp, "v=0") {
		return errors.New("not an SDP")
	}
	b.j.add("media:agent_answer")
	return nil
}
func (b fakeBridge) AddAgentCandidate(webrtc.ICECandidateInit) error { return nil }
func (b fakeBridge) SendDTMF(string) error                           { return nil }
func (b fakeBridge) StartWhatsAppMedia() error                       { b.j.add("media:start"); return nil }
func (b fakeBridge) ArmWatchdog() error                              { b.j.add("media:watchdog"); return nil }
func (b fakeBridge) Diagnose(agent bool) string {
	b.j.add(fmt.Sprintf("media:diagnose:%v", agent))
	return "nothing_from_peer"
}
func (b fakeBridge) Stats() media.Stats { return media.Stats{} }
func (b fakeBridge) Play(ps []*media.Prompt, o media.PlayOptions) (<-chan struct{}, error) {
	b.j.add(fmt.Sprintf("media:play:%s:%v", ps[0].Name(), o.Loop))
	ch := make(chan struct{})
	close(ch)
	return ch, nil
}
func (b fakeBridge) StopPlayback() { b.j.add("media:stop_playback") }
func (b fakeBridge) Close() error  { b.j.add("media:close"); return nil }

type fakeHub struct {
	j     *journal
	avail map[string]bool
}

func (h *fakeHub) Broadcast(_ func(*agents.Session) bool, v any) {
	switch m := v.(type) {
	case agents.CallMsg:
		h.j.add("agents:" + m.Type + ":" + m.Call.State)
	case agents.CallEnded:
		h.j.add("agents:call_ended:" + m.Outcome + ":" + m.Reason)
	}
}
func (h *fakeHub) AvailableAgents() map[string]bool                      { return h.avail }
func (h *fakeHub) Sessions(func(*agents.Session) bool) []*agents.Session { return nil }

func newRunnerCtrl(t *testing.T) (*Controller, *journal, *clock.Manual, *fakeGraph) {
	t.Helper()
	rs := redistest.Start(t)
	j := newJournal()
	clk := clock.NewManual(time.Now())
	g := &fakeGraph{j: j}
	c, err := New(Config{PhoneNumberID: "100", AppSecret: "s", VerifyToken: "v", KeyPrefix: "rt:",
		MetaTerminateWait: 10 * time.Second},
		Deps{Redis: rs.Client(), Graph: g, Media: fakeMedia{j: j}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c.SetHub(&fakeHub{j: j, avail: map[string]bool{"ann": true}})
	closeOnManualClock(t, c, clk)
	return c, j, clk, g
}

// closeOnManualClock closes c when the test ends. Close ends live calls
// and waits for Meta's terminate on the manual clock: the clock keeps moving
// until Close returns.
func closeOnManualClock(t *testing.T, c *Controller, clk *clock.Manual) {
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
					clk.Advance(time.Minute)
				}
			}
		}()
		_ = c.Close()
		close(done)
	})
}

func connectEvent(id string, ts time.Time) webhook.Event {
	return webhook.Event{PhoneNumberID: "100", DisplayPhoneNumber: "15550001111",
		Call: &webhook.CallEvent{CallID: id, Event: webhook.CallConnect, Direction: call.UserInitiated,
			From: "447700900123", SDPType: "offer", SDP: fakeSDP, Timestamp: ts, Duration: -1}}
}

func terminateEvent(id string, start, end time.Time, dur int64, codes ...int) webhook.Event {
	ce := &webhook.CallEvent{CallID: id, Event: webhook.CallTerminate, Direction: call.UserInitiated,
		From: "447700900123", Status: "COMPLETED", StartTime: start, EndTime: end, Duration: dur}
	for _, code := range codes {
		ce.Errors = append(ce.Errors, webhook.MetaError{Code: code})
	}
	return webhook.Event{PhoneNumberID: "100", Call: ce}
}

func cmd(typ, id string, extra ...func(*agents.ClientMessage)) *agents.ClientMessage {
	m := &agents.ClientMessage{Type: typ, CallID: id}
	for _, f := range extra {
		f(m)
	}
	return m
}

var ann = agentRef{Session: "s1", Agent: "ann", Available: true}

func TestRunnerUserInitiatedNoMediaBeforeAccept(t *testing.T) {
	c, j, clk, _ := newRunnerCtrl(t)
	ctx := context.Background()
	if err := c.HandleEvent(ctx, connectEvent("wacid.R1", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call_offered:ringing")
	if err := c.localCommand(ann, cmd(agents.TypeAccept, "wacid.R1")); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "media:agent_offer")
	if err := c.localCommand(ann, cmd(agents.TypeAnswer, "wacid.R1", func(m *agents.ClientMessage) { m.SDP = "garbage" })); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("bad answer: %v", err)
	}
	if err := c.localCommand(ann, cmd(agents.TypeAnswer, "wacid.R1", func(m *agents.ClientMessage) { m.SDP = fakeSDP })); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call:connected")
	got := j.all()
	order := []string{"graph:pre_accept", "agents:call_offered:ringing", "media:agent_offer", "media:agent_answer",
		"graph:accept", "media:start", "media:watchdog", "agents:call:connected"}
	if !inOrder(got, order) {
		t.Fatalf("effects out of order:\n got %v\nwant %v", got, order)
	}
	// The user hangs up; Meta's figures complete the record at once.
	start := clk.Now()
	if err := c.HandleEvent(ctx, terminateEvent("wacid.R1", start, start.Add(42*time.Second), 42), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call_ended:answered:user_hangup")
	j.wait(t, "media:close")
}

func TestRunnerTimersRunOnTheInjectedClock(t *testing.T) {
	c, j, clk, _ := newRunnerCtrl(t)
	ctx := context.Background()
	if err := c.HandleEvent(ctx, connectEvent("wacid.R2", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call_offered:ringing")
	waitPending(t, clk, 1) // the ring timer
	clk.Advance(c.cfg.RingTimeout - time.Second)
	if slices.Contains(j.all(), "graph:reject") {
		t.Fatal("rejected before the ring timeout")
	}
	clk.Advance(time.Second)
	j.wait(t, "graph:reject")
	j.wait(t, "agents:call_ended:missed:ring_timeout")
	// The record waits for Meta's terminate on the same clock.
	if c.lookup("wacid.R2") == nil {
		t.Fatal("the call should wait for Meta's terminate")
	}
	waitPending(t, clk, 1) // the meta-wait timer, once the actor has set it
	clk.Advance(c.cfg.MetaTerminateWait)
	deadline := time.Now().Add(5 * time.Second)
	for c.lookup("wacid.R2") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the record never became final")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if slices.Contains(j.all(), "media:start") || slices.Contains(j.all(), "media:watchdog") {
		t.Fatal("media toward WhatsApp or the watchdog started on a call never accepted")
	}
}

func TestRunnerStaleConnectIsRecordedNotActedOn(t *testing.T) {
	c, j, clk, _ := newRunnerCtrl(t)
	ctx := context.Background()
	stamp := clk.Now().Add(-2 * time.Minute)
	if err := c.HandleEvent(ctx, connectEvent("wacid.R3", stamp), clk.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.lookup("wacid.R3") != nil {
		if time.Now().After(deadline) {
			t.Fatal("stale call still live")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sc, err := c.store.load(ctx, "wacid.R3")
	if err != nil || sc.Record.EndReason != call.Stale || sc.Record.Outcome != call.Missed {
		t.Fatalf("stored %+v %v", sc, err)
	}
	for _, l := range j.all() {
		if strings.HasPrefix(l, "graph:") {
			t.Fatalf("a stale connect reached Meta: %v", j.all())
		}
	}
}

func TestRunnerAcceptRefusedEndsTheCall(t *testing.T) {
	c, j, clk, g := newRunnerCtrl(t)
	g.acceptErr = &cloudapi.Error{HTTPStatus: 500, Code: cloudapi.CodeConnectTimeout, Message: "timeout"}
	ctx := context.Background()
	if err := c.HandleEvent(ctx, connectEvent("wacid.R4", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call_offered:ringing")
	if err := c.localCommand(ann, cmd(agents.TypeAccept, "wacid.R4")); err != nil {
		t.Fatal(err)
	}
	err := c.localCommand(ann, cmd(agents.TypeAnswer, "wacid.R4", func(m *agents.ClientMessage) { m.SDP = fakeSDP }))
	var me *MetaError
	if !errors.As(err, &me) || me.Code != cloudapi.CodeConnectTimeout {
		t.Fatalf("answer: %v", err)
	}
	j.wait(t, "agents:call_ended:failed:meta_error")
	j.wait(t, "graph:reject")
	if slices.Contains(j.all(), "media:start") {
		t.Fatal("media started after a refused accept")
	}
	// Another agent's command on the ended call is refused cleanly.
	if err := c.localCommand(agentRef{Agent: "bob"}, cmd(agents.TypeHangup, "wacid.R4")); err == nil {
		t.Fatal("hangup of an ended call accepted")
	}
}

func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func waitPending(t *testing.T, clk *clock.Manual, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers pending, want %d", clk.Pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
