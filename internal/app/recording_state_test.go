package app

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/signaling/agents"
)

// recordingSeen is a call message's recording state (CallInfo.recording).
type recordingSeen struct {
	State   string
	MayStop bool
}

// nextRecording consumes the agent's next call message about id and
// returns its recording state.
func nextRecording(t *testing.T, ctx context.Context, ag *agentclient.Client, id string) recordingSeen {
	t.Helper()
	m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Type == "call" && m.Call != nil && m.Call.ID == id })
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Call struct {
			Recording        string `json:"recording"`
			RecordingMayStop bool   `json:"recording_may_stop"`
		} `json:"call"`
	}
	if err := json.Unmarshal(m.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	return recordingSeen{raw.Call.Recording, raw.Call.RecordingMayStop}
}

// recordingUntil adds to seen the distinct successive recording states the
// agent is sent about id (leading "" dropped) until last.
func recordingUntil(t *testing.T, ctx context.Context, ag *agentclient.Client, id, last string, seen []recordingSeen) []recordingSeen {
	t.Helper()
	for {
		r := nextRecording(t, ctx, ag, id)
		if (len(seen) == 0 && r.State == "") || (len(seen) > 0 && seen[len(seen)-1] == r) {
			continue
		}
		seen = append(seen, r)
		if r.State == last {
			return seen
		}
	}
}

// TestRecordLocalAgentSeesState: the agent's live call info carries the
// local recording state as it changes (consent → on → stopped by the
// agent or by a supervisor over REST; consent → refused without the
// caller's key) and whether the agent may stop it; the snapshot other
// readers see (Live) agrees.
func TestRecordLocalAgentSeesState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cfg := recordingConfig(t, "      mode: local\n      consent: notice\n      consent_by_country: {GB: explicit}\n      consent_timeout_seconds: 1\n      agent_may_stop: true\n")
	ta := startApp(t, "-config", cfg, "-data-dir", t.TempDir())
	ag := ta.agent(t, ctx, "alice")
	for _, row := range []struct {
		name, from string
		stop       string // who stops the recording once on: "agent" (recording_stop), "supervisor" (REST)
		want       []string
	}{
		{name: "notice, stopped by the agent", from: "+4915112345678", stop: "agent", want: []string{"consent", "on", "stopped"}},
		{name: "notice, stopped by a supervisor over REST", from: "+4915112345679", stop: "supervisor", want: []string{"consent", "on", "stopped"}},
		{name: "explicit, no key", from: "+447700900125", want: []string{"consent", "refused"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			uc := connectCall(t, ctx, ta, ag, row.from)
			last := row.want[len(row.want)-1]
			upTo := last
			if row.stop != "" {
				upTo = "on"
			}
			seen := recordingUntil(t, ctx, ag, uc.ID(), upTo, nil)
			if row.stop != "" {
				if got := ta.Ctrl.Live(); !slices.ContainsFunc(got, func(c agents.CallInfo) bool { return c.ID == uc.ID() && c.Recording == "on" }) {
					t.Errorf("live calls %+v do not show the recording on", got)
				}
				if row.stop == "agent" {
					must(t, ag.Send(map[string]any{"type": "recording_stop", "call_id": uc.ID(), "ref": "rs"}))
					if m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "rs" && m.Type != "call" }); err != nil || m.Type != "recording" {
						t.Fatalf("recording_stop: %v %+v", err, m)
					}
				} else {
					runRows(t, ta.URL, []apiRow{{name: "supervisor stops", method: "POST", status: 200,
						path: "/api/v1/calls/" + url.PathEscape(uc.ID()) + "/recording/stop",
						auth: "Bearer " + token(t, ta, "sue", agents.RoleSupervisor)}})
				}
				seen = recordingUntil(t, ctx, ag, uc.ID(), last, seen)
			}
			var states []string
			for _, s := range seen {
				states = append(states, s.State)
				if !s.MayStop {
					t.Errorf("%q: recording_may_stop false, the policy lets agents stop", s.State)
				}
			}
			if !slices.Equal(states, row.want) {
				t.Fatalf("the agent saw recording %v, want %v", states, row.want)
			}
			must(t, ag.Send(map[string]any{"type": "hangup", "call_id": uc.ID()}))
			waitEntry(t, ctx, ta, uc.ID())
		})
	}
}
