package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/browsertest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/recording"
)

// TestBrowserRecordingIndicator: on the real agent page, a call of a
// number that records locally (notice consent, agents may stop) shows the
// consent being asked, then "● Recording" with a stop button once the
// notice ended; the button stops the recording (the files are stored while
// the call goes on, shorter than the call) and the indicator says so; a
// stop the server refuses shows the server's words.
func TestBrowserRecordingIndicator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if browsertest.ExecPath("") == "" {
		t.Skip("chromium not installed")
	}
	cfg := recordingConfig(t, "      mode: local\n      consent: notice\n      agent_may_stop: true\n")
	ta := startApp(t, "-ring-timeout", "30s", "-config", cfg, "-data-dir", t.TempDir())
	wav, err := filepath.Abs("../../testdata/audio/agent-1000.wav")
	must(t, err)
	b := browsertest.Start(t, browsertest.Options{FakeAudioCapture: wav, Timeout: 90 * time.Second})
	t.Cleanup(b.Close) // before the app stops: no page holds a leg
	ann := b.Ctx
	openAgent(t, ann, ta, "ann", true)
	pctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	uc, err := ta.Sim.PlaceCall(pctx, metasim.CallOptions{From: "+4915112345670", Name: "Dana", Audio: oggBytes(t, "caller-440.ogg")})
	must(t, err)
	id := uc.ID()
	must(t, browsertest.WaitTrue(ann, visible("incoming-call", id), bstep))
	clickIn(t, ann, sel("incoming-call", id)+` [data-testid="accept"]`)
	must(t, browsertest.WaitTrue(ann, fmt.Sprintf(`window.callgwTest.state === "connected" && window.callgwTest.callId === %q`, id), bstep))

	const stopShown = `(e => !!e && e.offsetParent !== null)(document.querySelector('[data-testid="recording-stop"]'))`
	indicator := func(state, text string, stop bool) string {
		return fmt.Sprintf(`window.callgwTest.recording === %q && (e => !!e && e.offsetParent !== null && e.textContent.includes(%q))(document.querySelector('[data-testid="recording-state"]')) && %s === %v`,
			state, text, stopShown, stop)
	}
	t.Run("consent, then recording on", func(t *testing.T) {
		must(t, browsertest.WaitTrue(ann, indicator("consent", "consent", false), bstep))
		must(t, browsertest.WaitTrue(ann, indicator("on", "Recording", true), bstep))
		if live, err := browsertest.Eval[string](ann, `document.querySelector('[data-testid="recording-state"]').getAttribute('aria-live')`); err != nil || live != "polite" {
			t.Errorf("indicator aria-live %q %v", live, err)
		}
		if localResults(t, ta, "started") != 1 {
			t.Fatalf("the page shows recording, the recorder started %v", localResults(t, ta, "started"))
		}
		must(t, browsertest.Screenshot(ann, "agent-recording"))
	})

	t.Run("stop button", func(t *testing.T) {
		must(t, browsertest.Click(ann, "recording-stop", bstep))
		must(t, browsertest.WaitTrue(ann, indicator("stopped", "Recording stopped", false), bstep))
		// Stored while the call goes on: the recording was stopped, not ended.
		got := waitStored(t, deadline(t), ta, id, recording.KindUserAudio, recording.KindBusinessAudio)
		if got[recording.KindUserAudio].Size == 0 {
			t.Fatal("empty caller file")
		}
		if v := localResults(t, ta, "stopped"); v != 1 {
			t.Fatalf("stopped count %v", v)
		}
		if st, _ := browsertest.Eval[string](ann, `window.callgwTest.state`); st != "connected" {
			t.Fatalf("the call is %q after stopping the recording", st)
		}
		must(t, browsertest.Screenshot(ann, "agent-recording-stopped"))
	})

	t.Run("a refused stop shows the server's words", func(t *testing.T) {
		// The agent's click races a supervisor's stop: the server refuses.
		_, err := browsertest.Eval[bool](ann, `document.querySelector('[data-testid="recording-stop"]').click(), true`)
		must(t, err)
		must(t, browsertest.WaitTrue(ann, `window.callgwTest.recordingError !== "" && window.callgwTest.lastError && window.callgwTest.lastError.code === "recording_refused"`, bstep))
		msg, err := browsertest.Text(ann, "recording-error")
		must(t, err)
		if !strings.Contains(msg, "nothing is being recorded") {
			t.Fatalf("error shown %q, want the server's message", msg)
		}
	})

	wctx, wcancel := context.WithTimeout(pctx, bstep)
	defer wcancel()
	must(t, uc.WaitReceived(wctx, uc.ReceivedCount()+100)) // 2 s more of the call, not recorded
	must(t, browsertest.Click(ann, "hangup", bstep))
	e := waitEntry(t, pctx, ta, id)
	if e.RecordingConsent != "notice" {
		t.Fatalf("call log consent %q, want notice", e.RecordingConsent)
	}
	_, d := oggFile(t, pctx, ta, id, recording.KindUserAudio)
	start := waitStored(t, pctx, ta, id, recording.KindUserAudio)[recording.KindUserAudio].NoticeAt
	if call := e.EndedAt.Sub(start); d > call-1500*time.Millisecond {
		t.Fatalf("the recording lasts %v of the %v after it started: not stopped early", d, call)
	}
	must(t, browsertest.WaitTrue(ann, `window.callgwTest.state === "idle" && document.querySelector('[data-testid="recording"]').offsetParent === null`, bstep))
}
