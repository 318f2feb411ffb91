package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/webhook"
)

// acceptWithGraph is a Graph that can send Meta's recording objects.
type acceptWithGraph struct{ fakeGraph }

func (g *acceptWithGraph) AcceptWith(_ context.Context, r cloudapi.AcceptRequest) error {
	g.j.add("graph:accept_with:" + r.Recording.Status + ":" + r.Recording.Purpose)
	return nil
}

type fakeRecordings struct {
	j       *journal
	mediaOK bool
	mu      sync.Mutex
	raw     []json.RawMessage
}

func (r *fakeRecordings) MetaOptions(number string, u phone.User) (rec, tr *cloudapi.MediaOpt) {
	r.j.add("rec:options:" + number + ":" + u.Phone.E164)
	return cloudapi.Enabled("quality", "en_US"), nil
}
func (r *fakeRecordings) MediaAvailable(_ context.Context, number string, raw json.RawMessage) error {
	r.mu.Lock()
	r.raw = append(r.raw, raw)
	r.mu.Unlock()
	r.j.add("rec:media:" + number)
	if !r.mediaOK {
		return errors.New("redis down")
	}
	return nil
}
func (r *fakeRecordings) Answered(rec call.Record, b Bridge) {
	r.j.add("rec:answered:" + rec.PhoneNumberID + ":" + rec.Agent)
}
func (r *fakeRecordings) DTMF(call.ID, rune) {}
func (r *fakeRecordings) Ending(rec call.Record) string {
	r.j.add("rec:ending")
	return "explicit_given"
}

type recordsKept struct {
	mu   sync.Mutex
	recs []call.Record
}

func (k *recordsKept) Record(_ context.Context, r call.Record) error {
	k.mu.Lock()
	k.recs = append(k.recs, r)
	k.mu.Unlock()
	return nil
}

// TestRunnerRecordingHooks: accept carries the policy's objects, the hooks
// hear the answered call once and its end before the media closes, the
// consent lands on the record; Meta's recording webhooks go to the hooks
// and a failure asks Meta to retry.
func TestRunnerRecordingHooks(t *testing.T) {
	rs := redistest.Start(t)
	j := newJournal()
	clk := clock.NewManual(time.Now())
	g := &acceptWithGraph{fakeGraph{j: j}}
	kept := &recordsKept{}
	c, err := New(Config{PhoneNumberID: "100", AppSecret: "s", VerifyToken: "v", KeyPrefix: "rr:", MetaTerminateWait: time.Second},
		Deps{Redis: rs.Client(), Graph: g, Media: fakeMedia{j: j}, Clock: clk, Recorder: kept})
	if err != nil {
		t.Fatal(err)
	}
	c.SetHub(&fakeHub{j: j, avail: map[string]bool{"ann": true}})
	recs := &fakeRecordings{j: j}
	c.SetRecordings(recs)
	defer c.Close()
	ctx := context.Background()

	if err := c.HandleEvent(ctx, connectEvent("wacid.H1", clk.Now()), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "agents:call_offered:ringing")
	if err := c.localCommand(ann, cmd(agents.TypeAccept, "wacid.H1")); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "media:agent_offer")
	if err := c.localCommand(ann, cmd(agents.TypeAnswer, "wacid.H1", func(m *agents.ClientMessage) { m.SDP = fakeSDP })); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "rec:answered:100:ann")
	start := clk.Now()
	if err := c.HandleEvent(ctx, terminateEvent("wacid.H1", start, start.Add(5*time.Second), 5), clk.Now()); err != nil {
		t.Fatal(err)
	}
	j.wait(t, "media:close")
	want := []string{"rec:options:100:+447700900123", "graph:accept_with:ENABLED:quality", "media:start", "rec:answered:100:ann", "rec:ending", "media:close"}
	if !inOrder(j.all(), want) {
		t.Fatalf("hooks out of order:\n got %v\nwant %v", j.all(), want)
	}
	n := 0
	for _, l := range j.all() {
		if l == "rec:answered:100:ann" {
			n++
		}
		if l == "graph:accept" {
			t.Fatal("plain accept sent although the policy asks for recording")
		}
	}
	if n != 1 {
		t.Fatalf("Answered called %d times", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		kept.mu.Lock()
		done := len(kept.recs) == 1
		kept.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no final record")
		}
		time.Sleep(5 * time.Millisecond) // the record is written by the actor; no event to wait on here
	}
	if got := kept.recs[0].RecordingConsent; got != "explicit_given" {
		t.Fatalf("record consent %q", got)
	}

	// Meta's recording webhook goes to the hooks as received.
	raw := json.RawMessage(`{"id":"wacid.H1","event":"call_recording_available"}`)
	ev := webhook.Event{PhoneNumberID: "100", Raw: raw, Call: &webhook.CallEvent{CallID: "wacid.H1", Event: webhook.CallRecordingAvailable}}
	if err := c.HandleEvent(ctx, ev, clk.Now()); err == nil || !IsRetryable(err) {
		t.Fatalf("failed enqueue: %v, want an error Meta retries", err)
	}
	recs.mediaOK = true
	if err := c.HandleEvent(ctx, ev, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if len(recs.raw) != 2 || string(recs.raw[1]) != string(raw) {
		t.Fatalf("hooks got %s", recs.raw)
	}
	// Stopping: only the owner or a supervisor; without a stopper, refused.
	if err := c.StopRecording(ctx, "wacid.nope", ""); !errors.Is(err, ErrUnknownCall) {
		t.Fatalf("stop unknown call: %v", err)
	}
}
