package metasim

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func twoNumbers(c *Config) {
	c.Numbers = []Number{
		{PhoneNumberID: "100000000000003", DisplayPhoneNumber: "15550002222"},                                                   // same WABA
		{PhoneNumberID: "100000000000004", DisplayPhoneNumber: "447700900999", WABAID: "200000000000005", AccessToken: "tok-2"}, // other WABA
	}
}

// waitWebhook waits for a delivered webhook matching pred.
func waitWebhook(t *testing.T, e *env, what string, pred func(SentWebhook) bool) SentWebhook {
	t.Helper()
	w, err := e.sim.WaitWebhook(ctxT(t), pred)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return w
}

func hasKey(w SentWebhook, k string) bool {
	for _, x := range w.Keys {
		if x == k {
			return true
		}
	}
	return false
}

func TestAdversaryBatchesNumbersAndWABAs(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		twoNumbers(c)
		c.Adversary = Adversary{Seed: 7, BatchMax: 10, BatchWindow: 150 * time.Millisecond}
	})
	var ids []string
	for _, to := range []string{"", "100000000000003", "447700900999"} {
		uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123", To: to})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, uc.ID())
	}
	w := waitWebhook(t, e, "a batch", func(w SentWebhook) bool { return len(w.Keys) >= 2 })
	var env struct {
		Entry []struct {
			ID      string `json:"id"`
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					Metadata struct {
						PhoneNumberID string `json:"phone_number_id"`
					} `json:"metadata"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(w.Body, &env); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // pnid -> waba
	for _, en := range env.Entry {
		for _, ch := range en.Changes {
			got[ch.Value.Metadata.PhoneNumberID] = en.ID
		}
	}
	if len(env.Entry) != 2 || got["100000000000001"] != "200000000000002" || got["100000000000003"] != "200000000000002" ||
		got["100000000000004"] != "200000000000005" {
		t.Fatalf("batch = %s", w.Body)
	}
	// every connect arrives (some in the same POST)
	left := map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true}
	for len(left) > 0 {
		h := e.recv.wait(t, "connects", func(hook) bool { return true })
		for id := range left {
			if callEventIs(id, "connect")(h) {
				delete(left, id)
			}
		}
	}
}

func TestAdversaryHoldReordersTerminateBeforeConnect(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Adversary = Adversary{Hold: map[string]time.Duration{"connect": 300 * time.Millisecond}}
	})
	uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.Hangup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	first := e.recv.wait(t, "first call webhook", func(h hook) bool { return h.first("calls") != nil })
	if first.first("calls")["event"] != "terminate" {
		t.Fatalf("first = %s, want terminate before connect", first.raw)
	}
	e.recv.wait(t, "late connect", callEventIs(uc.ID(), "connect"))
}

func TestAdversaryDuplicatesAndRetries(t *testing.T) {
	tests := []struct {
		name    string
		adv     Adversary
		status  int32 // receiver's answer to the first delivery
		check   func(t *testing.T, w SentWebhook)
		wantCnt int // connect webhooks the receiver sees
	}{
		{"duplicate", Adversary{Seed: 1, Duplicate: 1}, 200, func(t *testing.T, w SentWebhook) {}, 2},
		{"200 treated as timeout", Adversary{Seed: 1, RetryProcessed: 1}, 200, func(t *testing.T, w SentWebhook) {
			if w.TimedOut != 1 || w.Attempts != 2 {
				t.Fatalf("TimedOut %d Attempts %d", w.TimedOut, w.Attempts)
			}
		}, 2},
		{"non-200 retried", Adversary{}, 500, func(t *testing.T, w SentWebhook) {
			if w.Attempts < 2 || w.Status != 200 {
				t.Fatalf("Attempts %d Status %d", w.Attempts, w.Status)
			}
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.WebhookRetries = 1; c.Adversary = tt.adv })
			e.recv.status.Store(tt.status)
			uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
			if err != nil {
				t.Fatal(err)
			}
			e.recv.wait(t, "connect", callEventIs(uc.ID(), "connect"))
			e.recv.status.Store(200)
			e.recv.wait(t, "connect again", callEventIs(uc.ID(), "connect"))
			w := waitWebhook(t, e, "record", func(w SentWebhook) bool { return hasKey(w, "connect") })
			tt.check(t, w)
			if tt.name == "duplicate" {
				waitWebhook(t, e, "duplicate record", func(w SentWebhook) bool { return w.Duplicate && hasKey(w, "connect") })
			}
		})
	}
}

func TestAdversaryShapes(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1780000000, 0)}
	e := newEnv(t, func(c *Config) {
		c.Clock = clk.Now
		c.Adversary = Adversary{Seed: 3, HidePhoneNumbers: true, IntegerTimestamps: 1, OmitDirection: 1, DurationMismatch: 1, ExtraErrorsInCall: true}
	})
	ctx := ctxT(t)
	uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	h := e.recv.wait(t, "connect", callEventIs(uc.ID(), "connect"))
	ev := h.first("calls")
	c := h.value()["contacts"].([]any)[0].(map[string]any)
	if _, ok := ev["from"]; ok || ev["from_user_id"] != uc.UserID() || ev["direction"] != nil || c["wa_id"] != nil {
		t.Fatalf("connect = %s", h.raw)
	}
	if _, ok := ev["timestamp"].(float64); !ok {
		t.Fatalf("timestamp should be an integer: %s", h.raw)
	}
	answer := newBizPeer(t).answer(t, ev["session"].(map[string]any)["sdp"].(string))
	if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": answer}}); st != 200 {
		t.Fatalf("accept = %d %v", st, body)
	}
	clk.Add(120 * time.Second)
	if err := uc.EndWithError(138022); err != nil {
		t.Fatal(err)
	}
	h = e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
	ev = h.first("calls")
	start, end, dur := ev["start_time"].(float64), ev["end_time"].(float64), ev["duration"].(float64)
	if end-start != 120 || dur == 120 || ev["errors"] == nil || h.value()["errors"] == nil {
		t.Fatalf("terminate = %s", h.raw)
	}
}

func TestAdversarySeedReproduces(t *testing.T) {
	draw := func() []bool {
		e := newEnv(t, func(c *Config) { c.Adversary = Adversary{Seed: 42} })
		var out []bool
		for range 64 {
			out = append(out, e.sim.chance(0.5))
		}
		return out
	}
	a, b := draw(), draw()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d differs with the same seed", i)
		}
	}
	e := newEnv(t, nil)
	if err := e.sim.SetAdversary(Adversary{Reorder: 2}); err == nil || e.sim.Adversary().Reorder != 0 {
		t.Fatalf("a bad adversary must be refused and change nothing: %v", err)
	}
	all := AdversaryAll()
	if err := e.sim.SetAdversary(all); err != nil || e.sim.Adversary().BatchMax != all.BatchMax {
		t.Fatalf("SetAdversary(AdversaryAll()) = %v", err)
	}
}

// TestAdversaryAllCallStillWorks runs a whole user-initiated call under every
// switch: the receiver still sees connect and terminate (maybe twice, in any order).
func TestAdversaryAllCallStillWorks(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Adversary = AdversaryAll(); c.Adversary.Seed = 99 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for !seen["connect"] || !seen["terminate"] {
		h := e.recv.wait(t, "call webhooks", func(h hook) bool { return true })
		for _, en := range h.body["entry"].([]any) {
			for _, ch := range en.(map[string]any)["changes"].([]any) {
				v := ch.(map[string]any)["value"].(map[string]any)
				if calls, ok := v["calls"].([]any); ok && calls[0].(map[string]any)["id"] == uc.ID() {
					seen[calls[0].(map[string]any)["event"].(string)] = true
				}
			}
		}
	}
}
