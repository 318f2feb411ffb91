package app

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/recording/opusfile"
	"github.com/callgw/callgw/signaling/agents"
)

// recordingConfig writes a CALLGW_CONFIG giving the demo number a recording policy.
func recordingConfig(t *testing.T, policy string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "callgw.yaml")
	doc := `version: 1
teams:
  - id: default
    agents: ["*"]
    max_size: 0
numbers:
  - phone_number_id: "` + DemoPhoneNumberID + `"
    brand: Demo
    token_env: CALLGW_ACCESS_TOKEN
    teams: [default]
    recording:
` + policy
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oggFile reads a stored Ogg/Opus object: its packets and its duration.
func oggFile(t *testing.T, ctx context.Context, ta *testApp, id string, k recording.Kind) ([][]byte, time.Duration) {
	t.Helper()
	rc, _, err := ta.Recordings.Archive().Open(ctx, "test", id, k, recording.ActionPlay)
	if err != nil {
		t.Fatalf("%v: %v", k, err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	pkts, err := oggopus.ReadPackets(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v is not Ogg/Opus: %v", k, err)
	}
	var samples uint64
	for _, p := range pkts {
		n, err := opusfile.Samples(p)
		if err != nil {
			t.Fatalf("%v: packet: %v", k, err)
		}
		samples += uint64(n)
	}
	return pkts, time.Duration(samples) * time.Second / 48000
}

// toneIn decodes the middle half of pkts and checks the dominant tone.
func toneIn(t *testing.T, who string, pkts [][]byte, want float64) {
	t.Helper()
	if len(pkts) < 40 {
		t.Fatalf("%s: only %d packets", who, len(pkts))
	}
	pcm, err := audiotest.DecodeAll(pkts[len(pkts)/4 : len(pkts)*3/4])
	if err != nil {
		t.Fatalf("%s: decode: %v", who, err)
	}
	if ok, f := audiotest.HasTone(pcm, want, 20); !ok {
		t.Fatalf("%s holds %.0f Hz, want %.0f Hz", who, f, want)
	}
}

func localResults(t *testing.T, ta *testApp, result string) float64 {
	return metricValue(t, ta, `callgw_recording_local_total{result="`+result+`"}`)
}

// TestRecordLocalNotice: with mode local and notice consent, the caller
// hears the notice, then both directions are recorded: two Ogg/Opus files
// that decode to the caller's 440 Hz and the agent's 1000 Hz, each as long
// as the call from the moment recording started.
func TestRecordLocalNotice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-recording=local", "-data-dir", t.TempDir())
	ag := ta.agent(t, ctx, "alice")
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	waitFor(t, ctx, "the notice to end and recording to start", func() bool { return localResults(t, ta, "started") == 1 })
	// While the notice played the caller heard it, not the agent's 1000 Hz.
	notice, err := media.BuiltinPrompt("consent_notice")
	if err != nil {
		t.Fatal(err)
	}
	heard := uc.Received()
	if k := int(notice.Duration()/(20*time.Millisecond)) - 10; k > 25 && len(heard) > k {
		pcm, err := audiotest.DecodeAll(heard[5:k])
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := audiotest.HasTone(pcm, 1000, 20); ok {
			t.Fatal("the caller heard the agent during the consent notice")
		}
	} else {
		t.Fatalf("notice of %v, caller heard %d packets", notice.Duration(), len(heard))
	}
	n := len(ag.Received(uc.ID()))
	waitFor(t, ctx, "3 s of talk", func() bool { return len(ag.Received(uc.ID())) > n+150 && uc.ReceivedCount() > 150 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.RecordingConsent != "notice" {
		t.Fatalf("consent %q, want notice", e.RecordingConsent)
	}
	got := waitStored(t, ctx, ta, uc.ID(), recording.KindUserAudio, recording.KindBusinessAudio)
	start := got[recording.KindUserAudio].NoticeAt
	want := e.EndedAt.Sub(start)
	if want < 2500*time.Millisecond {
		t.Fatalf("recorded only %v of the call", want)
	}
	user, ud := oggFile(t, ctx, ta, uc.ID(), recording.KindUserAudio)
	biz, bd := oggFile(t, ctx, ta, uc.ID(), recording.KindBusinessAudio)
	for who, d := range map[string]time.Duration{"caller file": ud, "agent file": bd} {
		if math.Abs(float64(d-want)) > float64(300*time.Millisecond) {
			t.Errorf("%s lasts %v, the call lasted %v from recording start", who, d, want)
		}
	}
	if diff := ud - bd; diff > 40*time.Millisecond || diff < -40*time.Millisecond {
		t.Errorf("the files differ in length: caller %v, agent %v", ud, bd)
	}
	t.Logf("recorded %v of the call: caller file %v (%d packets), agent file %v (%d packets)", want, ud, len(user), bd, len(biz))
	toneIn(t, "caller file", user, 440)
	toneIn(t, "agent file", biz, 1000)
	if localResults(t, ta, "stored") != 1 {
		t.Errorf("stored count %v", localResults(t, ta, "stored"))
	}
}

// TestRecordLocalExplicit: callers from GB must consent explicitly (the
// number's consent_by_country): no key means no recording
// (explicit_refused), pressing 1 means recording (explicit_given), which
// the agent may stop where the policy allows; a caller from DE gets the
// number's notice, and a supervisor stops that recording through REST.
func TestRecordLocalExplicit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cfg := recordingConfig(t, "      mode: local\n      consent: notice\n      consent_by_country: {GB: explicit}\n      consent_timeout_seconds: 1\n      agent_may_stop: true\n      agent_access: true\n")
	ta := startApp(t, "-config", cfg, "-data-dir", t.TempDir())
	ag := ta.agent(t, ctx, "alice")

	// No key: nothing recorded.
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	waitFor(t, ctx, "the consent to time out", func() bool { return localResults(t, ta, "refused") == 1 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	if e := waitEntry(t, ctx, ta, uc.ID()); e.RecordingConsent != "explicit_refused" {
		t.Fatalf("consent %q, want explicit_refused", e.RecordingConsent)
	}
	ta.Recordings.Wait()
	if es, err := ta.Recordings.Archive().Statuses(ctx, []string{uc.ID()}); err != nil || len(es[uc.ID()]) != 0 {
		t.Fatalf("refused call has recordings: %v %v", es, err)
	}

	// Key 1 during the prompt: recorded; the agent stops it before the end.
	uc2 := connectCall(t, ctx, ta, ag, "+447700900124")
	waitFor(t, ctx, "the prompt to reach the caller", func() bool { return uc2.ReceivedCount() > 10 })
	if err := uc2.SendDTMF("1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "recording to start", func() bool { return localResults(t, ta, "started") == 1 })
	n := len(ag.Received(uc2.ID()))
	waitFor(t, ctx, "2 s of talk", func() bool { return len(ag.Received(uc2.ID())) > n+100 })
	if err := ag.Send(map[string]any{"type": "recording_stop", "call_id": uc2.ID(), "ref": "rs"}); err != nil {
		t.Fatal(err)
	}
	if m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "rs" }); err != nil || m.Type != "recording" {
		t.Fatalf("recording_stop: %v %+v", err, m)
	}
	if err := ag.Send(map[string]any{"type": "recording_stop", "call_id": uc2.ID(), "ref": "rs2"}); err != nil {
		t.Fatal(err)
	}
	if m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "rs2" }); err != nil || m.Code != "recording_refused" {
		t.Fatalf("second recording_stop: %v %+v", err, m)
	}
	got := waitStored(t, ctx, ta, uc2.ID(), recording.KindUserAudio, recording.KindBusinessAudio)
	if got[recording.KindUserAudio].Size == 0 {
		t.Fatal("empty caller file")
	}
	user, _ := oggFile(t, ctx, ta, uc2.ID(), recording.KindUserAudio)
	toneIn(t, "caller file", user, 440)
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc2.ID()}); err != nil {
		t.Fatal(err)
	}
	if e := waitEntry(t, ctx, ta, uc2.ID()); e.RecordingConsent != "explicit_given" {
		t.Fatalf("consent %q, want explicit_given", e.RecordingConsent)
	}
	// agent_access: alice hears her own call's recording, bob does not.
	alice := "Bearer " + token(t, ta, "alice", agents.RoleAgent)
	bobTok := "Bearer " + token(t, ta, "bob", agents.RoleAgent)
	own := "/api/v1/calls/" + url.PathEscape(uc2.ID()) + "/recordings"
	runRows(t, ta.URL, []apiRow{
		{name: "own call", method: "GET", path: own, auth: alice, status: 200, check: func(t *testing.T, b map[string]any) {
			if es, _ := b["entries"].([]any); len(es) != 2 {
				t.Fatalf("alice's entries %v", b)
			}
		}},
		{name: "another agent's call", method: "GET", path: own, auth: bobTok, status: 403, code: "forbidden"},
		{name: "alice lists her call", method: "GET", path: "/api/v1/recordings", auth: alice, status: 200, check: func(t *testing.T, b map[string]any) {
			if cs, _ := b["calls"].([]any); len(cs) != 1 {
				t.Fatalf("alice lists %v", b)
			}
		}},
		{name: "bob lists nothing", method: "GET", path: "/api/v1/recordings", auth: bobTok, status: 200, check: func(t *testing.T, b map[string]any) {
			if cs, _ := b["calls"].([]any); len(cs) != 0 {
				t.Fatalf("bob lists %v", b)
			}
		}},
	})

	// A caller from DE: notice, recorded; agents may not stop it over REST
	// for another agent's call, a supervisor may, once.
	uc3 := connectCall(t, ctx, ta, ag, "+4915112345678")
	waitFor(t, ctx, "recording to start", func() bool { return localResults(t, ta, "started") == 2 })
	sup := "Bearer " + token(t, ta, "sue", agents.RoleSupervisor)
	bob := "Bearer " + token(t, ta, "bob", agents.RoleAgent)
	stop := "/api/v1/calls/" + url.PathEscape(uc3.ID()) + "/recording/stop"
	runRows(t, ta.URL, []apiRow{
		{name: "another agent", method: "POST", path: stop, auth: bob, status: 403, code: "not_your_call"},
		{name: "supervisor stops", method: "POST", path: stop, auth: sup, status: 200},
		{name: "stopped already", method: "POST", path: stop, auth: sup, status: 409, code: "recording_refused"},
		{name: "unknown call", method: "POST", path: "/api/v1/calls/wacid.nope/recording/stop", auth: sup, status: 404, code: "unknown_call"},
	})
	waitStored(t, ctx, ta, uc3.ID(), recording.KindUserAudio, recording.KindBusinessAudio)
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc3.ID()}); err != nil {
		t.Fatal(err)
	}
	if e := waitEntry(t, ctx, ta, uc3.ID()); e.RecordingConsent != "notice" || e.Country != "DE" {
		t.Fatalf("DE caller: consent %q country %q, want notice", e.RecordingConsent, e.Country)
	}
	if v := localResults(t, ta, "stopped"); v != 2 {
		t.Fatalf("stopped count %v, want 2", v)
	}
}

// TestRecordLocalQueuedCall: a caller who waited in the queue (answered by
// callgw, hold music) is asked for consent once an agent takes the call,
// then recorded.
func TestRecordLocalQueuedCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := filepath.Join(t.TempDir(), "callgw.yaml")
	must(t, os.WriteFile(p, []byte(`version: 1
teams:
  - id: sales
    agents: [ann]
    max_size: 5
    max_wait: 1m
numbers:
  - phone_number_id: "`+DemoPhoneNumberID+`"
    brand: Demo
    token_env: CALLGW_ACCESS_TOKEN
    teams: [sales]
    recording:
      mode: local
`), 0o600))
	ta := startApp(t, "-config", p, "-data-dir", t.TempDir())
	ann := ta.agent(t, ctx, "ann")
	must(t, ann.Available(ctx, false))
	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900140", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	must(t, uc.WaitState(ctx, metasim.Accepted)) // callgw answered: the caller waits
	waitFor(t, ctx, "hold music", func() bool { return uc.ReceivedCount() > 50 })
	if localResults(t, ta, "started") != 0 {
		t.Fatal("recording started while the caller waited for an agent")
	}
	must(t, ann.Available(ctx, true))
	if _, err := ann.WaitType(ctx, "call_offered", uc.ID()); err != nil {
		t.Fatal(err)
	}
	must(t, ann.Accept(ctx, uc.ID()))
	must(t, ann.WaitConnected(ctx, uc.ID()))
	waitFor(t, ctx, "the notice, then recording", func() bool { return localResults(t, ta, "started") == 1 })
	n := len(ann.Received(uc.ID()))
	waitFor(t, ctx, "2 s of talk", func() bool { return len(ann.Received(uc.ID())) > n+100 })
	must(t, ann.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}))
	if e := waitEntry(t, ctx, ta, uc.ID()); e.RecordingConsent != "notice" || e.Agent != "ann" {
		t.Fatalf("entry consent %q agent %q", e.RecordingConsent, e.Agent)
	}
	waitStored(t, ctx, ta, uc.ID(), recording.KindUserAudio, recording.KindBusinessAudio)
	user, _ := oggFile(t, ctx, ta, uc.ID(), recording.KindUserAudio)
	biz, _ := oggFile(t, ctx, ta, uc.ID(), recording.KindBusinessAudio)
	toneIn(t, "caller file", user, 440)
	toneIn(t, "agent file", biz, 1000)
}
