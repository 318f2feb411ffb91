package metasim

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestUICRTPBeforeAccept: a business that holds media until the accept 200
// leaves RTPBeforeAccept at 0; one that plays right after pre_accept is caught
// and the client counts the call answered at its first packet.
func TestUICRTPBeforeAccept(t *testing.T) {
	tests := []struct {
		name        string
		playEarly   bool
		wantCounted bool
	}{
		{"media after accept", false, false},
		{"media after pre_accept", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := ctxT(t)
			uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "447700900123", Audio: ToneAudio()})
			if err != nil {
				t.Fatal(err)
			}
			h := e.recv.wait(t, "connect", callEventIs(uc.ID(), "connect"))
			offer := h.first("calls")["session"].(map[string]any)["sdp"].(string)
			for _, want := range []string{"a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1",
				"a=setup:actpass", "a=ice-lite", "typ host"} {
				if !strings.Contains(offer, want) {
					t.Errorf("UIC offer lacks %q", want)
				}
			}
			biz := newBizPeer(t)
			answer := biz.answer(t, offer)
			sess := map[string]any{"sdp_type": "answer", "sdp": answer}
			if st, body := e.calls(t, map[string]any{"action": "pre_accept", "call_id": uc.ID(), "session": sess}); st != 200 {
				t.Fatalf("pre_accept = %d %v", st, body)
			}
			if err := uc.WaitState(ctx, Connected); err != nil {
				t.Fatal(err)
			}
			if tt.playEarly {
				biz.play(readOgg(t, "../testdata/audio/agent-1000.ogg"))
				if err := uc.WaitReceived(ctx, 5); err != nil {
					t.Fatal(err)
				}
			}
			// before accept, the caller sends silence only
			for _, p := range biz.waitOpus(t, 3) {
				if !bytes.Equal(p, opusSilence) {
					t.Fatal("the caller sent meaningful audio before accept")
				}
			}
			if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(), "session": sess}); st != 200 {
				t.Fatalf("accept = %d %v", st, body)
			}
			if !tt.playEarly {
				biz.play(readOgg(t, "../testdata/audio/agent-1000.ogg"))
			}
			if err := uc.WaitReceived(ctx, 20); err != nil {
				t.Fatal(err)
			}
			if got := uc.RTPBeforeAccept(); (got > 0) != tt.wantCounted {
				t.Fatalf("RTPBeforeAccept = %d, want counted=%v", got, tt.wantCounted)
			}
			if tt.playEarly && !uc.ClientAnsweredAt().Before(uc.acceptedRTime()) {
				t.Fatal("the client should have counted the call answered at the first early packet")
			}
			// a retried accept with the same answer succeeds; another answer is refused
			if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(), "session": sess}); st != 200 || body["success"] != true {
				t.Fatalf("retried accept = %d %v", st, body)
			}
			other := map[string]any{"sdp_type": "answer", "sdp": newBizPeer(t).answer(t, offer)}
			if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(), "session": other}); st != 400 || errCode(body) != 100 {
				t.Fatalf("accept with another answer = %d %v", st, body)
			}
			if err := uc.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func (c *UserCall) acceptedRTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acceptedRT
}

// TestEndWithTerminateOnlyCodes: tests can end a call with 138019-138023;
// errors sit at value.errors.
func TestEndWithTerminateOnlyCodes(t *testing.T) {
	e := newEnv(t, nil)
	for _, code := range []int{138019, 138020, 138021, 138022, 138023} {
		uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
		if err != nil {
			t.Fatal(err)
		}
		if err := uc.EndWithError(code); err != nil {
			t.Fatal(err)
		}
		h := e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
		errs, _ := h.value()["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["code"] != float64(code) || h.first("calls")["errors"] != nil ||
			h.first("calls")["status"] != "FAILED" {
			t.Fatalf("terminate %d = %s", code, h.raw)
		}
		if err := uc.EndWithError(code); !errors.Is(err, ErrCallEnded) {
			t.Fatalf("second EndWithError = %v", err)
		}
	}
	uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: "447700900123"})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.EndWithError(138006); !errors.Is(err, ErrInvalidCode) || uc.Reached(Ended) {
		t.Fatalf("EndWithError(138006) = %v", err)
	}
}

// TestBICNoBusinessMedia: after ACCEPTED, a business that sends nothing gets
// Meta's 138021 terminate (the WhatsApp client's watchdog).
func TestBICNoBusinessMedia(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.NoMediaTimeout = 300 * time.Millisecond })
	const user = "447700900123"
	e.sim.SetUser(user, UserBehavior{AnswerAfter: 10 * time.Millisecond})
	grantByRequest(t, e, user)
	biz := newBizPeer(t)
	st, body := connect(t, e, user, biz.offer(t))
	if st != 200 {
		t.Fatalf("connect = %d %v", st, body)
	}
	id := body["calls"].([]any)[0].(map[string]any)["id"].(string)
	h := e.recv.wait(t, "connect", callEventIs(id, "connect"))
	biz.setAnswer(t, h.first("calls")["session"].(map[string]any)["sdp"].(string))
	h = e.recv.wait(t, "terminate", callEventIs(id, "terminate"))
	errs, _ := h.value()["errors"].([]any)
	if ev := h.first("calls"); ev["status"] != "FAILED" || ev["start_time"] == nil || len(errs) != 1 || errs[0].(map[string]any)["code"] != 138021.0 {
		t.Fatalf("terminate = %s", h.raw)
	}
}
