package signaling

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/routing"
	"github.com/callgw/callgw/signaling/webhook"
)

const routeYAML = `version: 1
teams:
  - id: sales
    agents: [ann, bob]
    strategy: round_robin
    ring_seconds: 5
    max_wait: 30s
    max_size: 2
  - id: other
    agents: [zed]
numbers:
  - phone_number_id: "100"
    brand: Acme
    token_env: T
    teams: [sales]
  - phone_number_id: "200"
    brand: Other
    token_env: T
    teams: [other]
`

// newRoutedCtrl is newRunnerCtrl with a Router over routeYAML; available
// are the agents the hub reports available.
func newRoutedCtrl(t *testing.T, available ...string) (*Controller, *journal, *clock.Manual, *routing.Router) {
	t.Helper()
	rs := redistest.Start(t)
	j := newJournal()
	clk := clock.NewManual(time.Now())
	cfg, err := config.Parse([]byte(routeYAML), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(rs.Client(), routing.Options{Config: cfg, Instance: "i1", KeyPrefix: "rt:", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{PhoneNumberID: "100", Numbers: []string{"200"}, AppSecret: "s", VerifyToken: "v", KeyPrefix: "rt:",
		InstanceID: "i1", MetaTerminateWait: 10 * time.Second},
		Deps{Redis: rs.Client(), Graph: &fakeGraph{j: j}, Media: fakeMedia{j: j}, Clock: clk, Router: r})
	if err != nil {
		t.Fatal(err)
	}
	avail := map[string]bool{}
	for _, a := range available {
		avail[a] = true
	}
	c.SetHub(&fakeHub{j: j, avail: avail})
	closeOnManualClock(t, c, clk)
	return c, j, clk, r
}

// TestRoutingRunnerWaitingCall: nobody of the number's team is available:
// callgw accepts the call itself (after pre_accept, once), starts media and
// the watchdog, and queues the caller; the caller hangs up: missed,
// queue_abandoned, out of the queue, and a callback task for the team.
func TestRoutingRunnerWaitingCall(t *testing.T) {
	c, j, clk, r := newRoutedCtrl(t)
	ctx := context.Background()
	if err := c.HandleEvent(ctx, connectEvent("wacid.W1", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "media:play:hold:true")
	order := []string{"graph:pre_accept", "graph:accept", "media:start", "media:watchdog", "media:play:hold:true"}
	if got := j.all(); !inOrder(got, order) {
		t.Fatalf("effects out of order:\n got %v\nwant %v", got, order)
	}
	var q []routing.Entry
	deadline := time.Now().Add(5 * time.Second)
	for len(q) == 0 && time.Now().Before(deadline) {
		q, _ = r.Snapshot(ctx, "sales", clk.Now())
		time.Sleep(5 * time.Millisecond)
	}
	if len(q) != 1 || q[0].Call != "wacid.W1" || q[0].Owner != "i1" {
		t.Fatalf("queue %+v", q)
	}
	qs, err := c.Queues(ctx)
	if err != nil || len(qs) != 1 || qs[0].Brand != "Acme" || qs[0].Position != 1 {
		t.Fatalf("queues %+v %v", qs, err)
	}
	start := clk.Now()
	if err := c.HandleEvent(ctx, terminateEvent("wacid.W1", start, start.Add(9*time.Second), 9), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call_ended:missed:queue_abandoned")
	for time.Now().Before(deadline) {
		if q, _ = r.Snapshot(ctx, "sales", clk.Now()); len(q) == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(q) != 0 {
		t.Fatalf("still queued: %+v", q)
	}
	var ts []routing.Task
	for time.Now().Before(deadline) {
		if ts, _ = r.Tasks(ctx, "sales", routing.TaskOpen, 10); len(ts) == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(ts) != 1 || ts[0].FirstCall != "wacid.W1" {
		t.Fatalf("tasks %+v", ts)
	}
	n := 0
	for _, l := range j.all() {
		if l == "graph:accept" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d accepts", n)
	}
}

// TestRoutingRunnerRoundRobinRingsOneThenNext: a round-robin team rings one
// agent for ring_seconds, then the next (on the injected clock).
func TestRoutingRunnerRoundRobinRingsOneThenNext(t *testing.T) {
	c, j, clk, r := newRoutedCtrl(t, "ann", "bob")
	ctx := context.Background()
	if err := c.HandleEvent(ctx, connectEvent("wacid.RR", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "graph:pre_accept")
	first := waitReserved(t, ctx, r, "wacid.RR", "")
	clk.Advance(5 * time.Second)
	second := waitReserved(t, ctx, r, "wacid.RR", first)
	if first == second || (first != "ann" && first != "bob") || (second != "ann" && second != "bob") {
		t.Fatalf("rang %q then %q", first, second)
	}
	l := c.lookup("wacid.RR")
	info := l.snap.Load()
	if info.Brand != "Acme" || info.Team != "sales" || len(info.OfferedTo) != 1 || info.OfferedTo[0] != second {
		t.Fatalf("call info %+v", info)
	}
	// Nobody left: the caller waits in the queue (sales has one).
	clk.Advance(5 * time.Second)
	j.wait(t, "graph:accept")
}

// waitReserved waits until an agent other than not holds the call's reservation.
func waitReserved(t *testing.T, ctx context.Context, r *routing.Router, id call.ID, not string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range []config.AgentID{"ann", "bob"} {
			if got, _ := r.ReservedFor(ctx, a); got == id && string(a) != not {
				return string(a)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no agent (besides %q) rang", not)
	return ""
}

func TestRoutingCallingNumber(t *testing.T) {
	c, _, _, _ := newRoutedCtrl(t)
	tests := []struct {
		agent, from, want string
		err               error
	}{
		{"ann", "", "100", nil},
		{"ann", "100", "100", nil},
		{"zed", "200", "200", nil},
		{"ann", "200", "", ErrNotYourNumber},
		{"ann", "999", "", ErrUnknownBusinessNumber},
	}
	for _, tt := range tests {
		t.Run(tt.agent+"/"+tt.from, func(t *testing.T) {
			got, err := c.callingNumber(tt.agent, tt.from)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("got %q %v, want %q %v", got, err, tt.want, tt.err)
			}
		})
	}
	if pe := protocolError(ErrNotYourNumber); pe.(*agents.CodedError).Code != CodeNotYourNumber {
		t.Fatalf("protocol code %v", pe)
	}
	v := c.RoutingView("zed")
	if len(v.Numbers) != 1 || v.Numbers[0].Brand != "Other" || len(v.Teams) != 1 {
		t.Fatalf("zed's view %+v", v)
	}
}

func TestRoutingCallHoursOpen(t *testing.T) {
	weekdays := []cloudapi.OperatingHours{{DayOfWeek: "MONDAY", OpenTime: "0900", CloseTime: "1700"},
		{DayOfWeek: "TUESDAY", OpenTime: "0900", CloseTime: "1200"}, {DayOfWeek: "TUESDAY", OpenTime: "1300", CloseTime: "1700"}}
	h := cloudapi.CallHours{Status: "ENABLED", TimezoneID: "Europe/Madrid", WeeklyOperatingHours: weekdays,
		HolidaySchedule: []cloudapi.Holiday{{Date: "2026-12-08", StartTime: "0000", EndTime: "2359"}}}
	madrid, _ := time.LoadLocation("Europe/Madrid")
	at := func(s string) time.Time {
		t, err := time.ParseInLocation("2006-01-02 15:04", s, madrid)
		if err != nil {
			panic(err)
		}
		return t.UTC()
	}
	tests := []struct {
		name        string
		h           cloudapi.CallHours
		at          time.Time
		open, known bool
	}{
		{"monday morning", h, at("2026-11-30 10:00"), true, true},
		{"monday at opening", h, at("2026-11-30 09:00"), true, true},
		{"monday at closing", h, at("2026-11-30 17:00"), false, true},
		{"tuesday lunch break", h, at("2026-12-01 12:30"), false, true},
		{"tuesday afternoon", h, at("2026-12-01 13:30"), true, true},
		{"sunday", h, at("2026-11-29 10:00"), false, true},
		{"holiday on a tuesday", h, at("2026-12-08 10:00"), false, true},
		{"hours disabled", cloudapi.CallHours{Status: "DISABLED"}, at("2026-11-29 03:00"), true, true},
		{"unknown time zone", cloudapi.CallHours{Status: "ENABLED", TimezoneID: "Mars/Olympus"}, at("2026-11-29 03:00"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open, known := CallHoursOpen(tt.h, tt.at)
			if open != tt.open || known != tt.known {
				t.Fatalf("open %v known %v, want %v %v", open, known, tt.open, tt.known)
			}
		})
	}
}

// TestRoutingRedisDownRingsEveryFreeMember: when routing's Redis fails,
// a call still rings, every free member of the number's team at once.
func TestRoutingRedisDownRingsEveryFreeMember(t *testing.T) {
	rs := redistest.Start(t)
	routeRedis := redistest.Start(t)
	j := newJournal()
	clk := clock.NewManual(time.Now())
	cfg, err := config.Parse([]byte(routeYAML), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(routeRedis.Client(), routing.Options{Config: cfg, Instance: "i1", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{PhoneNumberID: "100", AppSecret: "s", VerifyToken: "v", KeyPrefix: "rt:", InstanceID: "i1"},
		Deps{Redis: rs.Client(), Graph: &fakeGraph{j: j}, Media: fakeMedia{j: j}, Clock: clk, Router: r})
	if err != nil {
		t.Fatal(err)
	}
	c.SetHub(&fakeHub{j: j, avail: map[string]bool{"ann": true, "bob": true}})
	closeOnManualClock(t, c, clk)
	routeRedis.Stop()
	if err := c.HandleEvent(context.Background(), connectEvent("wacid.D1", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "graph:pre_accept")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if l := c.lookup("wacid.D1"); l != nil {
			if ci := l.snap.Load(); ci != nil && ci.State == "ringing" {
				if len(ci.OfferedTo) != 2 {
					t.Fatalf("offered to %v, want ann and bob", ci.OfferedTo)
				}
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the call never rang; journal %v", j.all())
}

// TestRoutingSetNumbers: a reload's numbers: one added is served at once;
// one removed is not, but the events of its calls in progress still apply.
func TestRoutingSetNumbers(t *testing.T) {
	c, _, _, _ := newRoutedCtrl(t)
	c.SetNumbers([]string{"300"}) // 200 removed, 300 added
	call := func(e webhook.CallEventType) *webhook.CallEvent { return &webhook.CallEvent{Event: e} }
	tests := []struct {
		name        string
		ev          webhook.Event
		serves, ran bool // served; applied (served, or a removed number's call in progress)
	}{
		{"main number", webhook.Event{PhoneNumberID: "100", Call: call(webhook.CallConnect)}, true, true},
		{"added number", webhook.Event{PhoneNumberID: "300", Call: call(webhook.CallConnect)}, true, true},
		{"removed number: new call", webhook.Event{PhoneNumberID: "200", Call: call(webhook.CallConnect)}, false, false},
		{"removed number: terminate", webhook.Event{PhoneNumberID: "200", Call: call(webhook.CallTerminate)}, false, true},
		{"removed number: call status", webhook.Event{PhoneNumberID: "200", Status: &webhook.StatusEvent{}}, false, true},
		{"removed number: message", webhook.Event{PhoneNumberID: "200", UserMessage: &webhook.UserMessage{}}, false, false},
		{"never served", webhook.Event{PhoneNumberID: "999", Call: call(webhook.CallTerminate)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := c.serves(tt.ev.PhoneNumberID)
			if s != tt.serves || (s || c.retiredEvent(tt.ev)) != tt.ran {
				t.Fatalf("serves %v retired %v, want serves %v applied %v", s, c.retiredEvent(tt.ev), tt.serves, tt.ran)
			}
		})
	}
	c.SetNumbers([]string{"200", "300"}) // 200 back: served again
	if !c.serves("200") || c.retiredEvent(webhook.Event{PhoneNumberID: "200", Call: call(webhook.CallTerminate)}) {
		t.Fatal("a number added back is not served as before")
	}
}
