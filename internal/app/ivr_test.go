package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// ivrConfig: one number whose IVR menu (a 700 Hz test prompt) sends key 1
// to team one (alice) and key 2 to team two (bob).
const ivrConfig = `version: 1
agents: [alice, bob]
teams:
  - id: one
    agents: [alice]
  - id: two
    agents: [bob]
numbers:
  - phone_number_id: "%s"
    brand: IVR brand
    token_env: CALLGW_TEST_IVR_TOKEN
    teams: [one, two]
    ivr:
      start: main
      nodes:
        main:
          menu:
            prompt: %s
            options: {"1": sales, "2": support}
            timeout: 20s
            retries: 1
        sales: {team: one}
        support: {team: two}
`

func TestIVRRoutesByKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const number = "100000000000077"
	prompt, err := filepath.Abs("../../media/testdata/tone-700.opus")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "callgw.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(ivrConfig, number, prompt)), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startApp(t, "-config", file, "-ring-timeout", "20s")
	alice := ta.agentPlaying(t, ctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	bob := ta.agentPlaying(t, ctx, "bob", "agent-1000.ogg", agents.RoleAgent, true)

	uc, err := ta.Sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900777", To: number, Audio: oggBytes(t, "caller-440.ogg")})
	if err != nil {
		t.Fatal(err)
	}
	id := uc.ID()
	if err := uc.WaitState(ctx, metasim.Accepted); err != nil { // callgw answers: the caller is in the menu
		t.Fatal(err)
	}

	t.Run("the caller hears the menu prompt", func(t *testing.T) {
		var audio [][]byte
		waitFor(t, ctx, "the prompt", func() bool {
			audio = audio[:0]
			for _, p := range uc.Received() {
				if !bytes.Equal(p, []byte{0xf8, 0xff, 0xfe}) {
					audio = append(audio, p)
				}
			}
			return len(audio) >= 40
		})
		checkTone(t, "caller in the menu", audio[:40], 700)
	})
	if alice.Has(func(m agentclient.Msg) bool { return m.Type == "call_offered" && m.Call != nil && m.Call.ID == id }) {
		t.Fatal("the call was offered before the caller chose")
	}

	if err := uc.SendDTMF("2"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitType(ctx, "call_offered", id); err != nil {
		t.Fatal(err)
	}
	if alice.Has(func(m agentclient.Msg) bool { return m.Type == "call_offered" && m.Call != nil && m.Call.ID == id }) {
		t.Fatal("key 2 rang team one")
	}
	if err := bob.Accept(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := bob.WaitConnected(ctx, id); err != nil {
		t.Fatal(err)
	}
	n0 := uc.ReceivedCount()
	waitFor(t, ctx, "audio both ways with bob", func() bool { return uc.ReceivedCount() > n0+75 && len(bob.Received(id)) > 75 })
	checkTone(t, "caller with bob", tail(uc.Received(), 50), 1000)
	checkTone(t, "bob", bob.Received(id), 440)

	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, id)
	if !slices.Equal(e.IVRPath, []string{"main", "support"}) || e.Agent != "bob" || e.Outcome != call.Answered {
		t.Fatalf("entry: ivr_path %v agent %q outcome %v", e.IVRPath, e.Agent, e.Outcome)
	}
	if v := testutilCount(t, ta, "callgw_ivr_node_visits_total"); v < 2 {
		t.Fatalf("ivr node visits counted %v, want 2", v)
	}
	checkContinuity(t, uc)
}
