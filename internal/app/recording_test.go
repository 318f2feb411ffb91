package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/browsertest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/signaling/agents"
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
	ta := startApp(t, "-recording=meta", "-data-dir", t.TempDir(), "-api-keys", testAdminKey)
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
	checkRecordingAPI(t, ctx, ta, uc.ID())
}

const testAdminKey = "admin-key-0123456789"

// checkRecordingAPI: supervisors list, play (signed link) and read the
// transcript; the agent (no agent_access) may not; the call log shows the
// status; every access is in the admin's audit log.
func checkRecordingAPI(t *testing.T, ctx context.Context, ta *testApp, id string) {
	t.Helper()
	sup := "Bearer " + token(t, ta, "sue", agents.RoleSupervisor)
	alice := "Bearer " + token(t, ta, "alice", agents.RoleAgent)
	admin := "Bearer " + testAdminKey
	esc := url.PathEscape(id)
	var link string
	runRows(t, ta.URL, []apiRow{
		{name: "list", method: "GET", path: "/api/v1/recordings?number=" + DemoPhoneNumberID, auth: sup, status: 200, check: func(t *testing.T, b map[string]any) {
			calls, _ := b["calls"].([]any)
			if len(calls) != 1 || calls[0].(map[string]any)["call_id"] != id {
				t.Fatalf("list %v", b)
			}
		}},
		{name: "call entries with links", method: "GET", path: "/api/v1/calls/" + esc + "/recordings", auth: sup, status: 200, check: func(t *testing.T, b map[string]any) {
			es, _ := b["entries"].([]any)
			if len(es) != 2 {
				t.Fatalf("entries %v", b)
			}
			for _, e := range es {
				m := e.(map[string]any)
				if m["status"] != "stored" || m["url"] == "" || m["stream_url"] == "" {
					t.Fatalf("entry %v", m)
				}
				if m["kind"] == "recording" {
					link, _ = m["url"].(string)
				}
			}
		}},
		{name: "transcript", method: "GET", path: "/api/v1/calls/" + esc + "/transcript", auth: sup, status: 200, check: func(t *testing.T, b map[string]any) {
			turns, _ := b["turns"].([]any)
			if len(turns) != 2 || b["language"] != "en" || turns[0].(map[string]any)["speaker"] != "Business" {
				t.Fatalf("transcript %v", b)
			}
		}},
		{name: "agent without agent_access", method: "GET", path: "/api/v1/calls/" + esc + "/recordings", auth: alice, status: 403, code: "forbidden"},
		{name: "agent transcript", method: "GET", path: "/api/v1/calls/" + esc + "/transcript", auth: alice, status: 403, code: "forbidden"},
		{name: "agent list sees nothing", method: "GET", path: "/api/v1/recordings", auth: alice, status: 200, check: func(t *testing.T, b map[string]any) {
			if calls, _ := b["calls"].([]any); len(calls) != 0 {
				t.Fatalf("agent listed %v", b)
			}
		}},
		{name: "bad call id", method: "GET", path: "/api/v1/calls/a%7Cb/recordings", auth: sup, status: 400, code: "bad_request"},
		{name: "unknown call", method: "GET", path: "/api/v1/calls/wacid.nope/recordings", auth: sup, status: 404, code: "not_found"},
		{name: "bad kind", method: "GET", path: "/api/v1/calls/" + esc + "/recordings/video", auth: sup, status: 400, code: "bad_request"},
		{name: "bad from", method: "GET", path: "/api/v1/recordings?from=yesterday", auth: sup, status: 400, code: "bad_request"},
		{name: "audit needs admin", method: "GET", path: "/api/v1/recordings/audit", auth: sup, status: 403, code: "forbidden"},
		{name: "call log shows the status", method: "GET", path: "/api/v1/calls?limit=5", auth: sup, status: 200, check: func(t *testing.T, b map[string]any) {
			rs, _ := b["recordings"].(map[string]any)
			st, _ := rs[id].([]any)
			if len(st) != 2 || st[0].(map[string]any)["status"] != "stored" {
				t.Fatalf("call log recordings %v", b["recordings"])
			}
		}},
	})
	// The signed link plays without any header; a tampered one does not.
	for _, c := range []struct {
		u    string
		want int
	}{{link, 200}, {strings.Replace(link, "sig=", "sig=0", 1), 403}} {
		resp, err := http.Get(c.u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || (c.want == 200 && (!bytes.HasPrefix(b, []byte("OggS")) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "audio/ogg"))) {
			t.Fatalf("GET %s: %d %s", c.u, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// Streamed through the API with the bearer.
	req, _ := http.NewRequestWithContext(ctx, "GET", ta.URL+"/api/v1/calls/"+esc+"/recordings/recording?download=1", nil)
	req.Header.Set("Authorization", sup)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("OggS")) || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	// Every access by sue is in the audit log, with its action.
	m := apiRow{method: "GET", path: "/api/v1/recordings/audit?who=supervisor:sue&call_id=" + url.QueryEscape(id), auth: admin, status: 200}.run(t, ta.URL)
	actions := map[string]int{}
	for _, a := range m["accesses"].([]any) {
		actions[a.(map[string]any)["action"].(string)]++
	}
	if actions["list"] < 1 || actions["download"] < 3 || actions["view"] < 1 {
		t.Fatalf("audit of sue's accesses: %v", actions)
	}
}

// recordedMetaCall has a Meta-recorded call connected, talked for a while
// and hung up, and waits for its recording and transcript to be stored.
func recordedMetaCall(t *testing.T, ctx context.Context, ta *testApp) string {
	t.Helper()
	ag := ta.agent(t, ctx, "alice")
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	waitFor(t, ctx, "caller audio", func() bool { return len(ag.Received(uc.ID())) > 100 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, ctx, ta, uc.ID())
	waitStored(t, ctx, ta, uc.ID(), recording.KindRecording, recording.KindTranscript)
	return uc.ID()
}

// TestBrowserRecordingPlays: on the supervisor page's call history, the
// recorded call has a Play button; it opens an <audio> player on the signed
// link that really plays (currentTime advances) and the transcript's turns.
func TestBrowserRecordingPlays(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if browsertest.ExecPath("") == "" {
		t.Skip("chromium not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-recording=meta", "-data-dir", t.TempDir())
	id := recordedMetaCall(t, ctx, ta)
	page := playOnPage(t, ta, id, []string{"recording"})
	must(t, browsertest.WaitTrue(page, fmt.Sprintf(`document.querySelectorAll('%s [data-testid="transcript-turn"]').length === 2`, sel("rec-detail", id)), bstep))
	// The page's accesses are audited under the supervisor's name.
	acc, err := ta.Recordings.Archive().Audit().Read(ctx, recording.AuditQuery{Who: "supervisor:sue", CallID: id})
	must(t, err)
	seen := map[recording.Action]bool{}
	for _, a := range acc {
		seen[a.Action] = true
	}
	if !seen[recording.ActionDownload] || !seen[recording.ActionView] {
		t.Fatalf("audit of the page's accesses: %+v", acc)
	}
}

// TestBrowserLocalRecordingPlays: callgw's own recording of a call shows as
// two players (caller, agent) that both play.
func TestBrowserLocalRecordingPlays(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if browsertest.ExecPath("") == "" {
		t.Skip("chromium not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-recording=local", "-data-dir", t.TempDir())
	ag := ta.agent(t, ctx, "alice")
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	waitFor(t, ctx, "recording to start", func() bool {
		return metricValue(t, ta, `callgw_recording_local_total{result="started"}`) == 1
	})
	n := len(ag.Received(uc.ID()))
	waitFor(t, ctx, "2 s of talk", func() bool { return len(ag.Received(uc.ID())) > n+100 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, ctx, ta, uc.ID())
	waitStored(t, ctx, ta, uc.ID(), recording.KindUserAudio, recording.KindBusinessAudio)
	playOnPage(t, ta, uc.ID(), []string{"user_audio", "business_audio"})
}

// playOnPage opens the supervisor page, finds the call in the history
// (consent "Notice"), opens its players and checks each kind plays from a
// signed link.
func playOnPage(t *testing.T, ta *testApp, id string, kinds []string) context.Context {
	t.Helper()
	b := browsertest.Start(t, browsertest.Options{Timeout: 90 * time.Second})
	t.Cleanup(b.Close)
	page := b.Ctx
	must(t, browsertest.Navigate(page, ta.URL+"/supervisor#token="+token(t, ta, "sue", agents.RoleSupervisor)))
	row := sel("history-row", id)
	must(t, browsertest.WaitTrue(page, fmt.Sprintf(`(r => !!r && r.querySelector('[data-testid="rec-status"][data-kind="%s"][data-status="stored"]') && r.querySelector('[data-testid="history-consent"]').textContent === "Notice")(document.querySelector(%q))`, kinds[0], row), bstep))
	clickIn(t, page, row+` [data-testid="rec-open"]`)
	for _, k := range kinds {
		audio := fmt.Sprintf(`document.querySelector('%s [data-testid="rec-audio"][data-kind="%s"]')`, sel("rec-detail", id), k)
		must(t, browsertest.WaitTrue(page, audio+` && `+audio+`.readyState >= 1 && `+audio+`.duration > 1`, bstep))
		must(t, browsertest.WaitTrue(page, `(a => { if (a.paused) a.play(); return true })(`+audio+`)`, bstep))
		must(t, browsertest.WaitTrue(page, `(a => !a.paused && a.currentTime > 0.5 && !a.error)(`+audio+`)`, bstep))
		src, err := browsertest.Eval[string](page, audio+`.currentSrc`)
		must(t, err)
		if !strings.Contains(src, linkPath+"/") || !strings.Contains(src, "sig=") {
			t.Fatalf("the %s player plays %q, want a signed link", k, src)
		}
	}
	return page
}

// TestRecordMetaDownloadFailure: when Meta's media servers fail, each
// download is retried within its pass, then left pending with its error:
// the call log shows it, the pending gauge (the alert's series) counts it.
func TestRecordMetaDownloadFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-recording=meta", "-data-dir", t.TempDir())
	ta.Sim.FailMediaDownloads(1000)
	ag := ta.agent(t, ctx, "alice")
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	waitFor(t, ctx, "caller audio", func() bool { return len(ag.Received(uc.ID())) > 50 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, ctx, ta, uc.ID())
	var es []recording.Entry
	waitFor(t, ctx, "both downloads to fail a pass", func() bool {
		m, err := ta.Recordings.Archive().Statuses(ctx, []string{uc.ID()})
		es = m[uc.ID()]
		if err != nil || len(es) != 2 {
			return false
		}
		for _, e := range es {
			if e.Attempts < 1 {
				return false
			}
		}
		return true
	})
	for _, e := range es {
		if e.Status != recording.StatusPending || !strings.Contains(e.LastError, "HTTP 500") || !e.NextAttempt.After(time.Now()) {
			t.Fatalf("entry after a failed pass %+v", e)
		}
	}
	// Retried within the pass: 4 tries per object.
	gets := 0
	for _, r := range ta.Sim.Requests() {
		if r.Edge == "media" && r.Status == 500 {
			gets++
		}
	}
	if gets != 8 {
		t.Fatalf("%d failed media downloads, want 4 tries for each of 2 objects", gets)
	}
	if v := metricValue(t, ta, "callgw_recording_pending_downloads"); v != 2 {
		t.Fatalf("pending gauge %v, want 2", v)
	}
	if v := metricValue(t, ta, `callgw_recording_downloads_total{kind="recording",result="error"}`); v != 4 {
		t.Fatalf("error count %v, want 4", v)
	}
	sup := "Bearer " + token(t, ta, "sue", agents.RoleSupervisor)
	runRows(t, ta.URL, []apiRow{{name: "call log", method: "GET", path: "/api/v1/calls?limit=5", auth: sup, status: 200,
		check: func(t *testing.T, b map[string]any) {
			rs, _ := b["recordings"].(map[string]any)
			st, _ := rs[uc.ID()].([]any)
			if len(st) != 2 {
				t.Fatalf("call log recordings %v", b["recordings"])
			}
			for _, s := range st {
				m := s.(map[string]any)
				if m["status"] != "pending" || !strings.Contains(m["last_error"].(string), "HTTP 500") || m["attempts"].(float64) != 1 {
					t.Fatalf("call log recording %v", m)
				}
			}
		}}})
}

// TestRecordMetaOutbound: a business-initiated call's connect carries
// Meta's recording and transcription objects; both come back stored and
// linked to the call.
func TestRecordMetaOutbound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-recording=meta", "-data-dir", t.TempDir())
	const user = "+447700900210"
	ta.Sim.SetUser(user, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), Name: "Dana"})
	ag := ta.agent(t, ctx, "olga")
	grantByRequest(t, ctx, ag, user, "p1")
	id := dialAndLeg(t, ctx, ag, user, "d1")
	waitAnswered(t, ctx, ag, id)
	con, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "connect" && r.Status == 200 })
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(con.Body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"recording", "transcription"} {
		var o map[string]string
		_ = json.Unmarshal(raw[k], &o)
		if o["status"] != "ENABLED" || o["purpose"] == "" {
			t.Fatalf("connect %s = %s", k, raw[k])
		}
	}
	waitFor(t, ctx, "the user's audio", func() bool { return len(ag.Received(id)) > 75 })
	if err := ag.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	if e := waitEntry(t, ctx, ta, id); e.RecordingConsent != "notice" {
		t.Fatalf("consent %q", e.RecordingConsent)
	}
	waitStored(t, ctx, ta, id, recording.KindRecording, recording.KindTranscript)
}

// TestRecordConfigErrors: recording settings that cannot work are refused
// at start with the variable named.
func TestRecordConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad mode", []string{"-recording", "yes"}, "CALLGW_RECORDING"},
		{"bad consent", []string{"-recording", "local", "-recording-consent", "maybe"}, "maybe"},
		{"negative retention", []string{"-recording", "local", "-recording-retention-days", "-1"}, "retention_days"},
		{"s3 without bucket", []string{"-s3-endpoint", "127.0.0.1:9000", "-s3-access-key", "a", "-s3-secret-key", "b"}, "CALLGW_S3_"},
		{"s3 and data dir", []string{"-s3-endpoint", "127.0.0.1:9000", "-s3-bucket", "b", "-s3-access-key", "a", "-s3-secret-key", "b", "-data-dir", "/tmp/x"}, "not both"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(append([]string{"-addr", "127.0.0.1:0"}, tt.args...), func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
	cfg, err := LoadConfig([]string{"-addr", "127.0.0.1:0"}, func(k string) string {
		return map[string]string{"CALLGW_RECORDING": "both", "CALLGW_RECORDING_RETENTION_DAYS": "7"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := cfg.Rec.policy(); err != nil || !p.Mode.Meta() || !p.Mode.Local() || p.RetentionDays != 7 {
		t.Fatalf("policy from the environment %+v %v", p, err)
	}
}

// TestRecordDemoEmbeddedStore: the demo's embedded store (miniredis)
// understands every command the recording index, audit log and retention
// lease use.
func TestRecordDemoEmbeddedStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ta := startWith(t, []string{"-addr", "127.0.0.1:0", "-recording", "local", "-data-dir", t.TempDir()}, nil, nil)
	defer ta.stop()
	arch := ta.Recordings.Archive()
	start := time.Now().Add(-time.Minute)
	cr, err := arch.StartCall(DemoPhoneNumberID, "wacid.demo", start, 1)
	if err != nil {
		t.Fatal(err)
	}
	tone := packets(t, "caller-440.ogg")
	for i, p := range tone[:50] {
		if err := cr.User.WritePacket(p, uint32(i*960)); err != nil {
			t.Fatal(err)
		}
		if err := cr.Business.WritePacket(p, uint32(i*960)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cr.Finish(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if cs, err := arch.List(ctx, "sue", DemoPhoneNumberID, time.Time{}, time.Time{}, 10); err != nil || len(cs) != 1 || len(cs[0].Entries) != 2 {
		t.Fatalf("list %+v %v", cs, err)
	}
	if _, err := arch.Link(ctx, "sue", "wacid.demo", recording.KindUserAudio, time.Minute); err != nil {
		t.Fatal(err)
	}
	if st, err := arch.Statuses(ctx, []string{"wacid.demo", "wacid.none"}); err != nil || len(st["wacid.demo"]) != 2 {
		t.Fatalf("statuses %v %v", st, err)
	}
	if acc, err := arch.Audit().Read(ctx, recording.AuditQuery{Who: "sue"}); err != nil || len(acc) != 2 {
		t.Fatalf("audit %+v %v", acc, err)
	}
	r, err := recording.NewRetainer(ta.Recordings.Store(), ta.Redis, recording.RetainerConfig{Clock: clock.NewManual(time.Now().Add(49 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	waitFor(t, ctx, "the retention lease", func() bool {
		n, err = r.RunOnce(ctx)
		return !errors.Is(err, recording.ErrLeaseHeld)
	})
	if err != nil || n != 2 {
		t.Fatalf("retention removed %d: %v", n, err)
	}
}

// TestRecordSecondNumberPolicyAndReload: a configured number's policy
// applies to its calls (Meta recording only, its purpose and language);
// after the file is reloaded without it, its next call asks Meta for
// nothing.
func TestRecordSecondNumberPolicyAndReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const second = "100000000000009"
	doc := func(rec string) []byte {
		return []byte(`version: 1
teams:
  - id: all
    agents: ["*"]
numbers:
  - phone_number_id: "` + second + `"
    brand: Second brand
    token_env: CALLGW_TEST_SECOND_TOKEN
    teams: [all]
` + rec)
	}
	file := filepath.Join(t.TempDir(), "callgw.yaml")
	must(t, os.WriteFile(file, doc("    recording:\n      mode: meta\n      meta: {recording: true, purpose: training, announcement_language: en_GB}\n"), 0o600))
	ta := startApp(t, "-config", file, "-data-dir", t.TempDir())
	ag := ta.agent(t, ctx, "quinn")
	callSecond := func(from string) (*metasim.UserCall, map[string]json.RawMessage) {
		uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: from, To: second, Audio: oggBytes(t, "caller-440.ogg")})
		must(t, err)
		if _, err := ag.WaitType(ctx, "call_offered", uc.ID()); err != nil {
			t.Fatal(err)
		}
		must(t, ag.Accept(ctx, uc.ID()))
		must(t, uc.WaitState(ctx, metasim.Accepted))
		acc, err := ta.Sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "accept" && r.CallID == uc.ID() })
		must(t, err)
		var raw map[string]json.RawMessage
		must(t, json.Unmarshal(acc.Body, &raw))
		return uc, raw
	}
	uc, raw := callSecond("+447700900381")
	var o map[string]string
	_ = json.Unmarshal(raw["recording"], &o)
	if o["status"] != "ENABLED" || o["purpose"] != "training" || o["announcement_language"] != "en_GB" || raw["transcription"] != nil {
		t.Fatalf("accept on the second number: recording %s transcription %s", raw["recording"], raw["transcription"])
	}
	must(t, uc.Hangup(ctx))
	got := waitStored(t, ctx, ta, uc.ID(), recording.KindRecording)
	if e := got[recording.KindRecording]; e.Number != second || e.ExpiresAt.Sub(e.StoredAt) != 90*24*time.Hour {
		t.Fatalf("entry %+v", e)
	}

	must(t, os.WriteFile(file, doc(""), 0o600))
	must(t, ta.ReloadConfig())
	uc2, raw2 := callSecond("+447700900382")
	if raw2["recording"] != nil || raw2["transcription"] != nil {
		t.Fatalf("accept after the reload still asks Meta to record: %s", raw2["recording"])
	}
	must(t, uc2.Hangup(ctx))
}
