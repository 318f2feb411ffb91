package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/recording"
)

// waitStored waits until the call has a stored entry of each kind.
func waitStored(t *testing.T, ctx context.Context, ta *testApp, id string, kinds ...recording.Kind) map[recording.Kind]recording.Entry {
	t.Helper()
	got := map[recording.Kind]recording.Entry{}
	waitFor(t, ctx, "stored recordings", func() bool {
		es, err := ta.Recordings.Archive().Call(ctx, "test", id)
		if err != nil {
			return false
		}
		for _, e := range es {
			if e.Status == recording.StatusStored {
				got[e.Kind] = e
			}
		}
		for _, k := range kinds {
			if _, ok := got[k]; !ok {
				return false
			}
		}
		return true
	})
	return got
}

// TestRecordMetaNative: with mode meta, accept carries Meta's recording and
// transcription objects; after the call the simulator's webhooks lead to a
// stored recording (the caller's tone) and transcript linked to the call,
// and the call record says Meta's notice was the consent.
func TestRecordMetaNative(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta := startApp(t, "-recording=meta", "-data-dir", t.TempDir())
	ag := ta.agent(t, ctx, "alice")
	uc := connectCall(t, ctx, ta, ag, "+447700900123")

	acc, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "accept" && r.CallID == uc.ID() })
	if err != nil || acc.Status != 200 {
		t.Fatalf("accept: %v %+v", err, acc)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(acc.Body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"recording", "transcription"} {
		var o map[string]string
		_ = json.Unmarshal(raw[k], &o)
		if o["status"] != "ENABLED" || o["purpose"] != "quality assurance" || o["announcement_language"] != "en_US" {
			t.Fatalf("accept %s = %s", k, raw[k])
		}
	}
	pre, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "pre_accept" && r.CallID == uc.ID() })
	if err != nil || bytes.Contains(pre.Body, []byte(`"recording"`)) {
		t.Fatalf("pre_accept carries recording objects (Meta documents them on accept only): %s", pre.Body)
	}

	waitFor(t, ctx, "caller audio", func() bool { return len(ag.Received(uc.ID())) > 100 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.WaitType(ctx, "call_ended", uc.ID()); err != nil {
		t.Fatal(err)
	}
	if e := waitEntry(t, ctx, ta, uc.ID()); e.RecordingConsent != "notice" {
		t.Fatalf("call record consent %q, want notice (Meta's notice)", e.RecordingConsent)
	}

	got := waitStored(t, ctx, ta, uc.ID(), recording.KindRecording, recording.KindTranscript)
	if e := got[recording.KindRecording]; e.Number != DemoPhoneNumberID || e.MediaID == "" || e.ExpiresAt.IsZero() {
		t.Fatalf("recording entry %+v", e)
	}
	rc, _, err := ta.Recordings.Archive().Open(ctx, "test", uc.ID(), recording.KindRecording, recording.ActionPlay)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	pkts, err := oggopus.ReadPackets(bytes.NewReader(b))
	if err != nil || len(pkts) < 50 {
		t.Fatalf("Meta's recording: %d packets, %v", len(pkts), err)
	}
	checkTone(t, "Meta's recording", pkts, 440)

	tr, turns, err := ta.Recordings.Archive().Transcript(ctx, "test", uc.ID())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Transcript.Language != "en" || len(turns) != 2 || turns[0].Speaker != "Business" || turns[1].Speaker != "Customer" {
		t.Fatalf("transcript %+v turns %+v", tr.Transcript, turns)
	}
	if n, _ := ta.Recordings.Fetcher().Pending(ctx); n != 0 {
		t.Fatalf("%d downloads still pending", n)
	}
}
