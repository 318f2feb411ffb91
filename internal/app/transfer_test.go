package app

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// agentPlaying is ta.agent with the agent's audio from file (the tone tells
// who is heard).
func (ta *testApp) agentPlaying(t *testing.T, ctx context.Context, id, file string, role agents.Role, available bool) *agentclient.Client {
	t.Helper()
	tok, err := ta.AgentToken(id, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Dial(ctx, "ws"+strings.TrimPrefix(ta.URL, "http")+"/ws/agent", tok,
		agentclient.Options{Audio: packets(t, file), LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if available {
		if err := c.Available(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// checkContinuity: the WhatsApp user received one SSRC with sequence numbers
// +1 and timestamps moving forward by at most 60 ms per packet, and never a
// long silence (Meta drops a call after 20 s without media).
func checkContinuity(t *testing.T, uc *metasim.UserCall) {
	t.Helper()
	k := uc.Continuity()
	t.Logf("continuity at the user: %+v", k)
	switch {
	case k.Packets < 100:
		t.Fatalf("only %d packets at the user", k.Packets)
	case k.SSRCs != 1:
		t.Fatalf("%d SSRCs at the user, want 1", k.SSRCs)
	case k.SeqGaps != 0:
		t.Fatalf("%d sequence gaps at the user", k.SeqGaps)
	case k.TSBackwards != 0:
		t.Fatalf("%d timestamps went backwards", k.TSBackwards)
	case k.MaxTSStep > 3*960:
		t.Fatalf("a timestamp step of %d (over 60 ms)", k.MaxTSStep)
	case k.MaxArrivalGap > 2*time.Second:
		t.Fatalf("%v without a packet at the user", k.MaxArrivalGap)
	}
}

// tail returns the last n packets of p.
func tail(p [][]byte, n int) [][]byte {
	if len(p) > n {
		return p[len(p)-n:]
	}
	return p
}

// lacksTone: pkts are not (dominantly) the tone want.
func lacksTone(t *testing.T, who string, pkts [][]byte, want float64) {
	t.Helper()
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := audiotest.HasTone(pcm, want, 20); ok {
		t.Fatalf("%s hears %v Hz, which must not reach it", who, want)
	}
}

// monitorPeer is a supervisor's browser for the monitor messages: a real
// Pion peer that records the two tracks ("audio": the caller, "side": the
// agent) and plays audio.
type monitorPeer struct {
	t      *testing.T
	sup    *agentclient.Client
	callID string
	pc     *webrtc.PeerConnection
	track  *webrtc.TrackLocalStaticSample
	mu     sync.Mutex
	got    map[string][][]byte
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startMonitor(t *testing.T, ctx context.Context, sup *agentclient.Client, callID, mode string, audio [][]byte) *monitorPeer {
	t.Helper()
	if err := sup.Send(map[string]any{"type": "monitor", "call_id": callID, "mode": mode}); err != nil {
		t.Fatal(err)
	}
	off, err := sup.Wait(ctx, func(m agentclient.Msg) bool {
		return (m.Type == "monitor_offer" || m.Type == "error") && m.CallID == callID
	})
	if err != nil {
		t.Fatal(err)
	}
	if off.Type == "error" {
		t.Fatalf("monitor refused: %s %s", off.Code, off.Message)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	mp := &monitorPeer{t: t, sup: sup, callID: callID, pc: pc, got: map[string][][]byte{}, stop: make(chan struct{})}
	t.Cleanup(mp.close)
	mp.track, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "supervisor")
	if err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		id := tr.ID()
		buf := make([]byte, 1500)
		var pkt rtp.Packet
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != 111 {
				continue
			}
			mp.mu.Lock()
			mp.got[id] = append(mp.got[id], append([]byte(nil), pkt.Payload...))
			mp.mu.Unlock()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: off.SDP}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(mp.track); err != nil {
		t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := sup.Send(map[string]any{"type": "monitor_answer", "call_id": callID, "sdp": pc.LocalDescription().SDP}); err != nil {
		t.Fatal(err)
	}
	// The gateway's candidates trickle as monitor_ice (one waiter on the
	// client at a time: its Wait wakes only one).
	for {
		m, err := sup.Wait(ctx, func(m agentclient.Msg) bool {
			return m.CallID == callID && (m.Type == "monitor_ice" ||
				(m.Type == "monitor_state" && strings.Contains(string(m.Raw), `"state":"connected"`)))
		})
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == "monitor_state" {
			break
		}
		if m.Candidate != nil && m.Candidate.Candidate != "" {
			_ = pc.AddICECandidate(*m.Candidate)
		}
	}
	if audio != nil {
		mp.wg.Add(1)
		go func() {
			defer mp.wg.Done()
			tk := time.NewTicker(20 * time.Millisecond)
			defer tk.Stop()
			for i := 0; ; i++ {
				select {
				case <-mp.stop:
					return
				case <-tk.C:
				}
				_ = mp.track.WriteSample(pmedia.Sample{Data: audio[i%len(audio)], Duration: 20 * time.Millisecond})
			}
		}()
	}
	return mp
}

func (mp *monitorPeer) received(track string) [][]byte {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	return append([][]byte(nil), mp.got[track]...)
}

func (mp *monitorPeer) close() {
	select {
	case <-mp.stop:
		return
	default:
		close(mp.stop)
	}
	mp.wg.Wait()
	_ = mp.pc.Close()
}

func TestMonitorListenWhisperTakeOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agentPlaying(t, ctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	id := uc.ID()

	// An agent may not monitor.
	if err := ag.Send(map[string]any{"type": "monitor", "call_id": id, "mode": "listen", "ref": "m1"}); err != nil {
		t.Fatal(err)
	}
	if m, err := ag.Wait(ctx, func(m agentclient.Msg) bool { return m.Type == "error" && m.Ref == "m1" }); err != nil || m.Code != agents.CodeForbidden {
		t.Fatalf("agent monitor: %v %+v", err, m)
	}

	sup := ta.agentPlaying(t, ctx, "sue", "agent-1000.ogg", agents.RoleSupervisor, false)
	mp := startMonitor(t, ctx, sup, id, "listen", packets(t, "caller-440.ogg")) // the supervisor's voice: 440 Hz

	t.Run("listen hears the caller and the agent on two tracks", func(t *testing.T) {
		waitFor(t, ctx, "both tracks at the supervisor", func() bool {
			return len(mp.received("audio")) > 75 && len(mp.received("side")) > 75
		})
		checkTone(t, "supervisor (caller track)", mp.received("audio"), 440)
		checkTone(t, "supervisor (agent track)", mp.received("side"), 1000)
		if n := len(ag.ReceivedTrack(id, "side")); n != 0 {
			t.Fatalf("the agent received %d packets from a listener", n)
		}
	})

	t.Run("whisper reaches the agent, not the caller", func(t *testing.T) {
		if err := sup.Send(map[string]any{"type": "monitor", "call_id": id, "mode": "whisper"}); err != nil {
			t.Fatal(err)
		}
		n0 := uc.ReceivedCount()
		waitFor(t, ctx, "whisper at the agent", func() bool { return len(ag.ReceivedTrack(id, "side")) > 75 })
		checkTone(t, "agent (whisper track)", ag.ReceivedTrack(id, "side"), 440)
		checkTone(t, "agent (caller)", ag.Received(id), 440)
		waitFor(t, ctx, "caller audio during the whisper", func() bool { return uc.ReceivedCount() > n0+75 })
		checkTone(t, "caller during the whisper", uc.Received(), 1000)
	})

	t.Run("take over: the caller hears the supervisor", func(t *testing.T) {
		if err := sup.Send(map[string]any{"type": "monitor", "call_id": id, "mode": "takeover"}); err != nil {
			t.Fatal(err)
		}
		n0 := uc.ReceivedCount()
		waitFor(t, ctx, "supervisor audio at the caller", func() bool { return uc.ReceivedCount() > n0+100 })
		checkTone(t, "caller during the take-over", tail(uc.Received(), 50), 440)
		// back to listening: the agent is heard again
		if err := sup.Send(map[string]any{"type": "monitor", "call_id": id, "mode": "listen"}); err != nil {
			t.Fatal(err)
		}
		n1 := uc.ReceivedCount()
		waitFor(t, ctx, "agent audio at the caller again", func() bool { return uc.ReceivedCount() > n1+100 })
		checkTone(t, "caller after the take-over", tail(uc.Received(), 50), 1000)
	})

	if err := sup.Send(map[string]any{"type": "monitor_stop", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	if m, err := sup.Wait(ctx, func(m agentclient.Msg) bool {
		return (m.Type == "monitor_state" && m.CallID == id && strings.Contains(string(m.Raw), `"state":"closed"`)) || m.Type == "error"
	}); err != nil || m.Type == "error" {
		t.Fatalf("monitor_stop: %v %s", err, m.Raw)
	}
	checkContinuity(t, uc)
}

// holdPrompt is the built-in hold music's packets (media/prompts).
func holdPrompt(t *testing.T) [][]byte {
	t.Helper()
	f, err := os.Open("../../media/prompts/hold.opus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := oggopus.ReadPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hearsPrompt: the last n packets the caller received are, in order, a run
// of the prompt's packets (looped), and not silence.
func hearsPrompt(t *testing.T, who string, got [][]byte, prompt [][]byte, n int) {
	t.Helper()
	got = tail(got, n)
	if len(got) < n {
		t.Fatalf("%s: only %d packets", who, len(got))
	}
	matches := func(start int) bool {
		for i, g := range got {
			if !bytes.Equal(g, prompt[(start+i)%len(prompt)]) {
				return false
			}
		}
		return true
	}
	found := false
	for i := range prompt { // the music repeats packets: try every start
		if matches(i) {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("%s: the last %d packets are not a run of the prompt's %d", who, n, len(prompt))
	}
	pcm, err := audiotest.DecodeAll(got)
	if err != nil {
		t.Fatal(err)
	}
	if rms := audiotest.RMS(pcm); rms < 0.01 {
		t.Fatalf("%s: the prompt is near silent (rms %v)", who, rms)
	}
}

// waitCallMsg waits for a call message about id whose raw JSON has all of subs.
func waitCallMsg(t *testing.T, ctx context.Context, c *agentclient.Client, id string, subs ...string) agentclient.Msg {
	t.Helper()
	m, err := c.Wait(ctx, func(m agentclient.Msg) bool {
		if m.Type != "call" || m.Call == nil || m.Call.ID != id {
			return false
		}
		for _, s := range subs {
			if !strings.Contains(string(m.Raw), s) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("call message with %v: %v", subs, err)
	}
	return m
}

func TestHoldPlaysHoldAudio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t)
	ag := ta.agentPlaying(t, ctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	uc := connectCall(t, ctx, ta, ag, "+447700900123")
	id := uc.ID()
	waitFor(t, ctx, "audio both ways", func() bool { return len(ag.Received(id)) > 75 && uc.ReceivedCount() > 75 })

	if err := ag.Send(map[string]any{"type": "hold", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	waitCallMsg(t, ctx, ag, id, `"on_hold":true`)
	n0, a0 := uc.ReceivedCount(), len(ag.Received(id))
	waitFor(t, ctx, "3 s of hold audio", func() bool { return uc.ReceivedCount() > n0+150 })
	hearsPrompt(t, "caller on hold", uc.Received(), holdPrompt(t), 100)
	if a := len(ag.Received(id)); a > a0+10 {
		t.Fatalf("the agent received %d packets while the caller was on hold", a-a0)
	}

	if err := ag.Send(map[string]any{"type": "unhold", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	m := waitCallMsg(t, ctx, ag, id, `"state":"connected"`)
	if strings.Contains(string(m.Raw), `"on_hold":true`) {
		t.Fatalf("still on hold: %s", m.Raw)
	}
	n1, a1 := uc.ReceivedCount(), len(ag.Received(id))
	waitFor(t, ctx, "audio both ways again", func() bool { return uc.ReceivedCount() > n1+75 && len(ag.Received(id)) > a1+75 })
	checkTone(t, "caller after hold", tail(uc.Received(), 50), 1000)
	checkTone(t, "agent after hold", ag.Received(id), 440)

	// REST: the same hold, by the agent's token.
	tok, err := ta.AgentToken("alice", agents.RoleAgent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want int
		body string
	}{
		{"/api/v1/calls/" + id + "/hold", http.StatusNoContent, `"on_hold":true`},
		{"/api/v1/calls/" + id + "/resume", http.StatusNoContent, `"state":"connected"`},
		{"/api/v1/calls/nope/hold", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ta.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Fatalf("POST %s: %d, want %d", tc.path, res.StatusCode, tc.want)
		}
		if tc.body != "" {
			waitCallMsg(t, ctx, ag, id, tc.body)
		}
	}
	checkContinuity(t, uc)
}

func TestBlindTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ta := startApp(t)
	alice := ta.agentPlaying(t, ctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	uc := connectCall(t, ctx, ta, alice, "+447700900123")
	id := uc.ID()
	bob := ta.agentPlaying(t, ctx, "bob", "caller-440.ogg", agents.RoleAgent, true) // bob speaks at 440 Hz
	waitFor(t, ctx, "alice at the caller", func() bool { return uc.ReceivedCount() > 75 })
	checkTone(t, "caller with alice", tail(uc.Received(), 50), 1000)

	if err := alice.Send(map[string]any{"type": "transfer", "call_id": id, "agent": "bob", "mode": "blind"}); err != nil {
		t.Fatal(err)
	}
	off, err := bob.WaitType(ctx, "call_offered", id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(off.Raw), `"from":"alice"`) || !strings.Contains(string(off.Raw), `"phase":"ringing"`) {
		t.Fatalf("offer to bob: %s", off.Raw)
	}
	n0 := uc.ReceivedCount()
	waitFor(t, ctx, "hold audio while bob rings", func() bool { return uc.ReceivedCount() > n0+100 })
	hearsPrompt(t, "caller while bob rings", uc.Received(), holdPrompt(t), 75)

	if err := bob.Accept(ctx, id); err != nil {
		t.Fatal(err)
	}
	if end, err := alice.WaitType(ctx, "call_ended", id); err != nil || end.Reason != "transferred" {
		t.Fatalf("alice: %v %+v", err, end)
	}
	if err := bob.WaitConnected(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitCallMsg(t, ctx, bob, id, `"agent":"bob"`, `"media":"up"`)
	n1 := uc.ReceivedCount()
	waitFor(t, ctx, "audio both ways with bob", func() bool { return uc.ReceivedCount() > n1+100 && len(bob.Received(id)) > 75 })
	checkTone(t, "caller with bob", tail(uc.Received(), 50), 440)
	checkTone(t, "bob", bob.Received(id), 440)

	if err := bob.Send(map[string]any{"type": "hangup", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, id)
	if e.Agent != "bob" || len(e.Handlers) != 2 || e.Handlers[0].Agent != "alice" || e.Handlers[1].Agent != "bob" ||
		e.Handlers[0].To.IsZero() || e.Handlers[1].To.IsZero() || e.Handlers[1].From.Before(e.Handlers[0].To) {
		t.Fatalf("entry agent %q handlers %+v", e.Agent, e.Handlers)
	}
	checkContinuity(t, uc)
}

func TestBlindTransferNoAnswerGoesBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ta := startApp(t, "-ring-timeout", "3s")
	alice := ta.agentPlaying(t, ctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	uc := connectCall(t, ctx, ta, alice, "+447700900123")
	id := uc.ID()
	bob := ta.agentPlaying(t, ctx, "bob", "caller-440.ogg", agents.RoleAgent, true)
	if err := alice.Send(map[string]any{"type": "transfer", "call_id": id, "agent": "bob", "mode": "blind"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitType(ctx, "call_offered", id); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitType(ctx, "call_taken", id); err != nil { // bob stops ringing after the ring time
		t.Fatal(err)
	}
	m := waitCallMsg(t, ctx, alice, id, `"agent":"alice"`, `"state":"connected"`)
	for strings.Contains(string(m.Raw), `"transfer"`) || strings.Contains(string(m.Raw), `"on_hold":true`) {
		m = waitCallMsg(t, ctx, alice, id, `"agent":"alice"`)
	}
	n0 := uc.ReceivedCount()
	waitFor(t, ctx, "alice again", func() bool { return uc.ReceivedCount() > n0+75 })
	checkTone(t, "caller back with alice", tail(uc.Received(), 50), 1000)
	// A transfer to nobody available is refused.
	if err := alice.Send(map[string]any{"type": "transfer", "call_id": id, "agent": "zed", "mode": "blind", "ref": "x1"}); err != nil {
		t.Fatal(err)
	}
	if e, err := alice.Wait(ctx, func(m agentclient.Msg) bool { return m.Type == "error" && m.Ref == "x1" }); err != nil || e.Code != agents.CodeNoTarget {
		t.Fatalf("transfer to zed: %v %+v", err, e)
	}
	// REST: the same rules at the HTTP edge; another agent may not transfer alice's call.
	for _, tc := range []struct {
		who, body string
		want      int
	}{
		{"alice", `{"agent":"zed","mode":"blind"}`, http.StatusConflict},
		{"alice", `{"agent":"bob","mode":"cold"}`, http.StatusBadRequest},
		{"alice", `{"agent":"bob","team":"x","mode":"warm"}`, http.StatusBadRequest},
		{"bob", `{"agent":"alice","mode":"blind"}`, http.StatusConflict},
		{"alice", `{"agent":"bob","mode":"blind"}`, http.StatusNoContent},
	} {
		tok, err := ta.AgentToken(tc.who, agents.RoleAgent, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ta.URL+"/api/v1/calls/"+id+"/transfer", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Fatalf("%s POST transfer %s: %d, want %d", tc.who, tc.body, res.StatusCode, tc.want)
		}
	}
	if _, err := bob.WaitType(ctx, "call_offered", id); err != nil { // the REST transfer rings bob
		t.Fatal(err)
	}
	checkContinuity(t, uc)
}

func TestWarmTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ta := startApp(t)
	alice := ta.agentPlaying(t, ctx, "alice", "agent-1000.ogg", agents.RoleAgent, true)
	uc := connectCall(t, ctx, ta, alice, "+447700900123")
	id := uc.ID()
	bob := ta.agentPlaying(t, ctx, "bob", "caller-440.ogg", agents.RoleAgent, true)

	if err := alice.Send(map[string]any{"type": "transfer", "call_id": id, "agent": "bob", "mode": "warm"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitType(ctx, "call_offered", id); err != nil {
		t.Fatal(err)
	}
	if err := bob.Accept(ctx, id); err != nil { // the consultation leg
		t.Fatal(err)
	}
	if err := bob.WaitConnected(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitCallMsg(t, ctx, alice, id, `"phase":"consulting"`)

	t.Run("alice and bob talk while the caller holds", func(t *testing.T) {
		waitFor(t, ctx, "alice and bob hear each other", func() bool {
			return len(bob.ReceivedTrack(id, "side")) > 75 && len(alice.ReceivedTrack(id, "side")) > 75
		})
		checkTone(t, "bob hears alice", bob.ReceivedTrack(id, "side"), 1000)
		checkTone(t, "alice hears bob", alice.ReceivedTrack(id, "side"), 440)
		if n := len(bob.Received(id)); n != 0 {
			t.Fatalf("bob heard %d caller packets during the consultation", n)
		}
		n0 := uc.ReceivedCount()
		waitFor(t, ctx, "hold audio", func() bool { return uc.ReceivedCount() > n0+100 })
		hearsPrompt(t, "caller during the consultation", uc.Received(), holdPrompt(t), 75)
	})

	if err := alice.Send(map[string]any{"type": "transfer_complete", "call_id": id}); err != nil {
		t.Fatal(err)
	}
	if end, err := alice.WaitType(ctx, "call_ended", id); err != nil || end.Reason != "transferred" {
		t.Fatalf("alice: %v %+v", err, end)
	}
	waitCallMsg(t, ctx, bob, id, `"agent":"bob"`)
	t.Run("bob has the caller", func(t *testing.T) {
		n1 := uc.ReceivedCount()
		waitFor(t, ctx, "audio both ways with bob", func() bool { return uc.ReceivedCount() > n1+100 && len(bob.Received(id)) > 75 })
		checkTone(t, "caller with bob", tail(uc.Received(), 50), 440)
		checkTone(t, "bob hears the caller", bob.Received(id), 440)
	})
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, id)
	if len(e.Handlers) != 2 || e.Handlers[0].Agent != "alice" || e.Handlers[1].Agent != "bob" {
		t.Fatalf("handlers %+v", e.Handlers)
	}
	checkContinuity(t, uc)
}
