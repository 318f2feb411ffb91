package metasim

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/callgw/callgw/internal/testkit/audiotest"
)

func TestInboundCallAudioBothWays(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	uc, err := e.sim.PlaceCall(ctx, CallOptions{From: "+447700900123", Name: "Alice",
		Audio: fileBytes(t, "../testdata/audio/caller-440.ogg"), DeeplinkPayload: "campaign-7"})
	if err != nil {
		t.Fatal(err)
	}
	h := e.recv.wait(t, "connect", callEventIs(uc.ID(), "connect"))
	ev := h.first("calls")
	sess := ev["session"].(map[string]any)
	if h.field() != "calls" || ev["from"] != "447700900123" || ev["to"] != "15550001111" ||
		ev["direction"] != "USER_INITIATED" || sess["sdp_type"] != "offer" || ev["deeplink_payload"] != "campaign-7" {
		t.Fatalf("connect webhook = %s", h.raw)
	}
	if _, err := strconv.ParseInt(ev["timestamp"].(string), 10, 64); err != nil {
		t.Fatalf("timestamp must be a string of epoch seconds: %v", ev["timestamp"])
	}
	if c := h.value()["contacts"].([]any)[0].(map[string]any); c["wa_id"] != "447700900123" ||
		c["profile"].(map[string]any)["name"] != "Alice" {
		t.Fatalf("contacts = %v", c)
	}
	offer := sess["sdp"].(string)
	for _, want := range []string{"a=ice-lite", "a=setup:actpass", "a=mid:audio", "a=group:BUNDLE audio",
		"a=rtpmap:111 opus/48000/2", "a=fmtp:111 " + opusFmtp, "a=ptime:20", "a=rtcp-fb:111 transport-cc",
		"a=rtpmap:126 telephone-event/8000", "typ host"} {
		if !strings.Contains(offer, want) {
			t.Errorf("offer lacks %q", want)
		}
	}
	if strings.Count(offer, "m=audio") != 1 || strings.Contains(offer, "typ srflx") {
		t.Errorf("offer must have one audio m-line and host candidates only:\n%s", offer)
	}
	if err := uc.WaitState(ctx, Ringing); err != nil {
		t.Fatal(err)
	}

	biz := newBizPeer(t)
	answer := biz.answer(t, offer)
	if !strings.Contains(answer, "a=setup:active") {
		t.Fatalf("test peer must answer as DTLS client:\n%s", answer)
	}
	if st, body := e.calls(t, map[string]any{"action": "pre_accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": answer}}); st != 200 || body["success"] != true {
		t.Fatalf("pre_accept = %d %v", st, body)
	}
	if err := uc.WaitState(ctx, Connected); err != nil {
		t.Fatal(err)
	}
	biz.play(readOgg(t, "../testdata/audio/agent-1000.ogg"))
	if st, body := e.calls(t, map[string]any{"action": "accept", "call_id": uc.ID(),
		"session": map[string]any{"sdp_type": "answer", "sdp": answer}}); st != 200 {
		t.Fatalf("accept = %d %v", st, body)
	}
	if err := uc.WaitState(ctx, Accepted); err != nil {
		t.Fatal(err)
	}

	// user -> business: 440 Hz
	pcm, err := audiotest.DecodeAll(biz.waitOpus(t, 100)[20:])
	if err != nil {
		t.Fatal(err)
	}
	if ok, f := audiotest.HasTone(pcm, 440, 15); !ok {
		t.Fatalf("business heard %.0f Hz, want 440", f)
	}
	// business -> user: 1000 Hz
	if err := uc.WaitReceived(ctx, 100); err != nil {
		t.Fatal(err)
	}
	pcm, err = audiotest.DecodeAll(uc.Received()[20:])
	if err != nil {
		t.Fatal(err)
	}
	if ok, f := audiotest.HasTone(pcm, 1000, 15); !ok {
		t.Fatalf("user heard %.0f Hz, want 1000", f)
	}
	// DTMF user -> business (RFC 4733 on the same SSRC)
	if err := uc.SendDTMF("1#9"); err != nil {
		t.Fatal(err)
	}
	biz.waitDTMF(t, "1#9")
	if err := uc.SendDTMF("x"); !errors.Is(err, ErrInvalidDigits) {
		t.Fatalf("SendDTMF(x) = %v", err)
	}

	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	th := e.recv.wait(t, "terminate", callEventIs(uc.ID(), "terminate"))
	term := th.first("calls")
	if term["status"] != "COMPLETED" || term["start_time"] == nil || term["end_time"] == nil || term["duration"] == nil {
		t.Fatalf("terminate = %s", th.raw)
	}
	if _, ok := term["duration"].(float64); !ok {
		t.Fatalf("duration must be an integer: %v", term["duration"])
	}
	if uc.EndedBy() != "user" {
		t.Fatalf("EndedBy = %q", uc.EndedBy())
	}
	if err := uc.Hangup(ctx); !errors.Is(err, ErrCallEnded) {
		t.Fatalf("second Hangup = %v", err)
	}
	if uc.RTCPReceived() == 0 {
		t.Log("no RTCP read yet (reports are sent every few seconds)")
	}
	if e.recv.badSig.Load() != 0 {
		t.Fatal("a webhook failed signature verification")
	}
}
