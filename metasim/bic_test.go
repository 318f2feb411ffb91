package metasim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/audiotest"
)

// callHook returns the next calls-field webhook about call id (event or
// status), skipping others.
func (r *receiver) callHook(t *testing.T, id string) (hook, string) {
	t.Helper()
	var name string
	h := r.wait(t, "calls webhook of "+id, func(h hook) bool {
		if h.field() != "calls" {
			return false
		}
		if c := h.first("calls"); c != nil && c["id"] == id {
			name = c["event"].(string)
			return true
		}
		if st := h.first("statuses"); st != nil && st["id"] == id {
			name = st["status"].(string)
			return true
		}
		return false
	})
	return h, name
}

// TestBusinessInitiatedSequence checks the reference's BIC sequence: connect
// webhook with Meta's SDP answer (setup:active) before pickup, RINGING, then
// ACCEPTED / REJECTED / nothing, then terminate with start_time iff picked up
// (== ACCEPTED's timestamp); statuses carry recipient ids and the opaque
// data; only silence reaches the business before pickup.
func TestBusinessInitiatedSequence(t *testing.T) {
	tests := []struct {
		name   string
		answer CallAnswer
		seq    []string
		end    string
	}{
		{"answer", Answer, []string{"connect", "RINGING", "ACCEPTED", "terminate"}, "COMPLETED"},
		{"decline", Decline, []string{"connect", "RINGING", "REJECTED", "terminate"}, "FAILED"},
		{"no answer", NoAnswer, []string{"connect", "RINGING", "terminate"}, "FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.RingTimeout = 400 * time.Millisecond })
			const user = "447700900123"
			e.sim.SetUser(user, UserBehavior{Answer: tt.answer, AnswerAfter: 300 * time.Millisecond, Audio: ToneAudio(), Username: "alice"})
			grantByRequest(t, e, user)
			biz := newBizPeer(t)
			st, body := e.calls(t, map[string]any{"action": "connect", "to": "+" + user, "biz_opaque_callback_data": "ticket-42",
				"session": map[string]any{"sdp_type": "offer", "sdp": biz.offer(t)}})
			if st != 200 {
				t.Fatalf("connect = %d %v", st, body)
			}
			id := body["calls"].([]any)[0].(map[string]any)["id"].(string)
			uc, ok := e.sim.OutboundCall(id)
			if !ok || !strings.HasPrefix(id, "wacid.") {
				t.Fatalf("OutboundCall(%q) missing", id)
			}
			var acceptedTS any
			for i, want := range tt.seq {
				h, got := e.recv.callHook(t, id)
				if got != want {
					t.Fatalf("webhook %d = %s, want %s (sequence %v): %s", i, got, want, tt.seq, h.raw)
				}
				switch want {
				case "connect":
					ev := h.first("calls")
					sess := ev["session"].(map[string]any)
					sdp := sess["sdp"].(string)
					if sess["sdp_type"] != "answer" || !strings.Contains(sdp, "a=setup:active") || ev["direction"] != "BUSINESS_INITIATED" ||
						ev["to"] != user || ev["to_user_id"] != uc.UserID() || ev["from"] != "15550001111" || ev["biz_opaque_callback_data"] != "ticket-42" {
						t.Fatalf("connect webhook = %s", h.raw)
					}
					if uc.Reached(Accepted) {
						t.Fatal("connect must come before pickup")
					}
					biz.setAnswer(t, sdp) // applied at once: the leg comes up while it rings
					biz.play(readOgg(t, "../testdata/audio/agent-1000.ogg"))
				case "RINGING", "ACCEPTED", "REJECTED":
					s := h.first("statuses")
					if s["type"] != "call" || s["recipient_id"] != user || s["recipient_user_id"] != uc.UserID() || s["biz_opaque_callback_data"] != "ticket-42" {
						t.Fatalf("status = %s", h.raw)
					}
					if c := h.value()["contacts"].([]any)[0].(map[string]any); c["user_id"] != uc.UserID() || c["profile"].(map[string]any)["username"] != "alice" {
						t.Fatalf("contacts = %v", c)
					}
					if want == "ACCEPTED" {
						acceptedTS = s["timestamp"]
					}
				case "terminate":
					ev := h.first("calls")
					if ev["status"] != tt.end || ev["biz_opaque_callback_data"] != "ticket-42" {
						t.Fatalf("terminate = %s", h.raw)
					}
					if picked := tt.answer == Answer; picked != (ev["start_time"] != nil) || picked != (ev["duration"] != nil) {
						t.Fatalf("start_time/duration must be present iff picked up: %s", h.raw)
					}
					if tt.answer == Answer && ev["start_time"] != acceptedTS {
						t.Fatalf("ACCEPTED timestamp %v != start_time %v", acceptedTS, ev["start_time"])
					}
				}
				if want == "ACCEPTED" {
					// the user's audio: silence until pickup, then the tone
					pkts := biz.waitOpus(t, 60)
					silent := 0
					for silent < len(pkts) && bytes.Equal(pkts[silent], opusSilence) {
						silent++
					}
					if silent < 3 {
						t.Fatalf("only %d silence frames before pickup: the user spoke before ACCEPTED", silent)
					}
					pkts = biz.waitOpus(t, silent+60)[silent+10:]
					for _, p := range pkts {
						if bytes.Equal(p, opusSilence) {
							t.Fatal("silence after the tone started")
						}
					}
					pcm, err := audiotest.DecodeAll(pkts)
					if err != nil {
						t.Fatal(err)
					}
					if ok, f := audiotest.HasTone(pcm, 440, 15); !ok {
						t.Fatalf("business heard %.0f Hz after pickup, want 440", f)
					}
					if err := uc.WaitReceived(ctxT(t), 20); err != nil {
						t.Fatal(err)
					}
					if st, _ := e.calls(t, map[string]any{"action": "terminate", "call_id": id}); st != 200 {
						t.Fatal("terminate failed")
					}
				}
			}
			_, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?user_wa_id="+user, testToken, nil)
			usage := view["actions"].([]any)[1].(map[string]any)["limits"].([]any)[0].(map[string]any)["current_usage"]
			if want := map[bool]float64{true: 1, false: 0}[tt.answer == Answer]; usage != want {
				t.Fatalf("connected-call usage = %v, want %v", usage, want)
			}
		})
	}
}

// TestBICToBSUIDOnlyUser calls a phone-less user by `recipient`: webhooks carry
// to_user_id/recipient_user_id only; `to` wins when both are given.
func TestBICToBSUIDOnlyUser(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RingTimeout = 300 * time.Millisecond })
	const bsuid = "US.13491208655302741918"
	if err := e.sim.AddUser(bsuid, UserBehavior{Answer: NoAnswer, Username: "bob", ParentBSUID: "US.ENT.11815799212886844830"}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.GrantPermission("", bsuid, false); err != nil {
		t.Fatal(err)
	}
	st, view := e.call(t, "GET", "/v23.0/100000000000001/call_permissions?recipient=US.ENT.11815799212886844830", testToken, nil)
	if st != 200 || view["permission"].(map[string]any)["status"] != "temporary" {
		t.Fatalf("call_permissions by parent BSUID = %d %v", st, view)
	}
	biz := newBizPeer(t)
	st, body := e.calls(t, map[string]any{"action": "connect", "recipient": bsuid,
		"session": map[string]any{"sdp_type": "offer", "sdp": biz.offer(t)}})
	if st != 200 {
		t.Fatalf("connect by recipient = %d %v", st, body)
	}
	id := body["calls"].([]any)[0].(map[string]any)["id"].(string)
	h, _ := e.recv.callHook(t, id)
	ev := h.first("calls")
	if _, has := ev["to"]; has || ev["to_user_id"] != bsuid || ev["to_parent_user_id"] != "US.ENT.11815799212886844830" {
		t.Fatalf("connect to a BSUID-only user = %s", h.raw)
	}
	c := h.value()["contacts"].([]any)[0].(map[string]any)
	if _, has := c["wa_id"]; has || c["user_id"] != bsuid || c["profile"].(map[string]any)["username"] != "bob" {
		t.Fatalf("contacts = %v", c)
	}
	h, _ = e.recv.callHook(t, id)
	if s := h.first("statuses"); s["recipient_id"] != nil || s["recipient_user_id"] != bsuid {
		t.Fatalf("RINGING = %s", h.raw)
	}
	e.recv.wait(t, "terminate", callEventIs(id, "terminate"))

	// to wins over recipient
	const phoneUser = "447700900555"
	e.sim.SetUser(phoneUser, UserBehavior{Answer: NoAnswer})
	if st, body := e.calls(t, map[string]any{"action": "connect", "to": phoneUser, "recipient": bsuid,
		"session": map[string]any{"sdp_type": "offer", "sdp": newBizPeer(t).offer(t)}}); st != 401 || errCode(body) != 138006 {
		t.Fatalf("connect with to (no permission) and recipient (permission) = %d %v; `to` must win", st, body)
	}
	for _, bad := range []map[string]any{{"recipient": "not-a-bsuid"}, {"recipient": "US.99999"}, {}} {
		bad["action"] = "connect"
		bad["session"] = map[string]any{"sdp_type": "offer", "sdp": newBizPeer(t).offer(t)}
		if st, body := e.calls(t, bad); st != 400 || errCode(body) != 100 {
			t.Fatalf("connect %v = %d %v", bad, st, body)
		}
	}
}

func TestBICSynchronousErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PrimaryNoBIC = true })
	const user = "447700900123"
	if st, body := connect(t, e, user, newBizPeer(t).offer(t)); st != 400 || errCode(body) != 138013 ||
		body["error"].(map[string]any)["error_subcode"] != 2593139.0 {
		t.Fatalf("connect from a number without BIC = %d %v", st, body)
	}
	e2 := newEnv(t, nil)
	if st, body := connect(t, e2, user, newBizPeer(t).offer(t)); st != 401 || errCode(body) != 138006 {
		t.Fatalf("connect without permission = %d %v", st, body)
	}
	if len(e2.sim.Calls()) != 0 {
		t.Fatal("a refused connect created a call")
	}
}
