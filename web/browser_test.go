package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/internal/testkit/browsertest"
)

const (
	testToken = "test-token"
	step      = 15 * time.Second // bound on every wait for the page
)

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// msg is one agent-protocol message.
type msg map[string]any

func (m msg) str(k string) string { s, _ := m[k].(string); return s }

// hub is the test's side of the agent protocol: it accepts the page's
// websocket, hands every message to the test, and forwards ICE and answers
// to the gateway peer of the current call.
type hub struct {
	t    *testing.T
	msgs chan msg
	peer atomic.Pointer[gatewayPeer]

	mu    sync.Mutex
	conn  *websocket.Conn
	conns []*websocket.Conn
}

func newHub(t *testing.T) *hub {
	return &hub{t: t, msgs: make(chan msg, 256)}
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "http://"+r.Host }}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		h.t.Errorf("upgrade: %v", err)
		return
	}
	h.mu.Lock()
	h.conn = c
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			h.t.Errorf("page sent non-JSON %q", data)
			return
		}
		if m.str("type") == "ice" {
			if p := h.peer.Load(); p != nil && p.callID == m.str("call_id") {
				p.addICE(m)
				continue
			}
		}
		h.msgs <- m
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
}

func (h *hub) send(t testing.TB, m msg) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		t.Fatal("send: page not connected")
	}
	if err := h.conn.WriteJSON(m); err != nil {
		t.Fatalf("send %v: %v", m["type"], err)
	}
}

// expect returns the next message from the page, which must be of type typ.
func (h *hub) expect(t testing.TB, typ string) msg {
	t.Helper()
	deadline := time.After(step)
	for {
		select {
		case m := <-h.msgs:
			switch m.str("type") {
			case typ:
				return m
			case "ping":
				continue
			}
			t.Fatalf("page sent %v, want %s", m, typ)
		case <-deadline:
			t.Fatalf("page sent no %s within %v", typ, step)
		}
	}
}

// gatewayPeer plays the gateway's agent leg: a real Pion peer that offers
// Opus + telephone-event (its offer carries ref, the accept, resume or dial
// that led to it), plays caller-440.ogg and records what it receives.
type gatewayPeer struct {
	t      *testing.T
	callID string
	pc     *webrtc.PeerConnection
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	remote  bool
	pending []webrtc.ICECandidateInit
	got     [][]byte
	full    chan struct{} // closed once enough packets arrived
	want    int
}

func newGatewayPeer(t *testing.T, h *hub, callID, ref string, packets [][]byte) *gatewayPeer {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"}, PayloadType: 126},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gatewayPeer{t: t, callID: callID, pc: pc, cancel: cancel, full: make(chan struct{}), want: 200}
	t.Cleanup(g.close)

	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "callgw")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	g.wg.Add(2)
	go func() { // RTCP drain, ends when the peer closes
		defer g.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	go func() { // the caller's voice: 440 Hz, 20 ms frames, looped
		defer g.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := track.WriteSample(media.Sample{Data: packets[i%len(packets)], Duration: 20 * time.Millisecond}); err != nil && !errors.Is(err, context.Canceled) {
				return
			}
		}
	}()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if !strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeOpus) {
			return
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.Payload) == 0 {
				continue
			}
			g.mu.Lock()
			if len(g.got) < g.want {
				g.got = append(g.got, append([]byte(nil), p.Payload...))
				if len(g.got) == g.want {
					close(g.full)
				}
			}
			g.mu.Unlock()
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		cand := map[string]any{"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
		if c != nil {
			init := c.ToJSON()
			cand["candidate"] = init.Candidate
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.conn.WriteJSON(msg{"type": "ice", "call_id": callID, "candidate": cand}); err != nil {
			t.Errorf("gateway: send candidate: %v", err)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.peer.Store(g)
	h.send(t, msg{"type": "offer", "ref": ref, "call_id": callID, "sdp": offer.SDP})
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gatewayPeer) setAnswer(sdp string) {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		g.t.Fatalf("gateway: answer: %v", err)
	}
	g.remote = true
	for _, c := range g.pending {
		if err := g.pc.AddICECandidate(c); err != nil {
			g.t.Errorf("gateway: candidate: %v", err)
		}
	}
	g.pending = nil
}

func (g *gatewayPeer) addICE(m msg) {
	raw, _ := json.Marshal(m["candidate"])
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal(raw, &c); err != nil {
		g.t.Errorf("page sent bad candidate %s: %v", raw, err)
		return
	}
	if c.Candidate == "" {
		return // end of candidates
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.remote {
		g.pending = append(g.pending, c)
		return
	}
	if err := g.pc.AddICECandidate(c); err != nil {
		g.t.Errorf("gateway: candidate %q: %v", c.Candidate, err)
	}
}

// received waits until enough of the browser's audio arrived and returns it.
func (g *gatewayPeer) received(timeout time.Duration) ([][]byte, error) {
	select {
	case <-g.full:
	case <-time.After(timeout):
		g.mu.Lock()
		n := len(g.got)
		g.mu.Unlock()
		return nil, fmt.Errorf("only %d of %d packets from the browser within %v", n, g.want, timeout)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got, nil
}

func (g *gatewayPeer) close() {
	g.cancel()
	g.pc.Close()
	g.wg.Wait()
}

// newTestServer serves the pages, the test hub on /ws/agent and the REST
// endpoints the pages read, from fixtures under testdata/web.
func newTestServer(t *testing.T, h *hub) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/agent", Handler())
	mux.Handle("/supervisor", Handler())
	mux.Handle("/static/", Handler())
	mux.Handle("/ws/agent", h)
	fixture := func(name string) http.HandlerFunc {
		body, err := os.ReadFile(repoPath(t, filepath.Join("testdata", "web", name)))
		if err != nil {
			t.Fatal(err)
		}
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				http.Error(w, `{"error":{"code":"unauthenticated","message":"bad token"}}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
	mux.Handle("GET /api/v1/calls", fixture("calls.json"))
	mux.Handle("GET /api/v1/live", fixture("live.json"))
	mux.Handle("GET /api/v1/usage", fixture("usage.json"))
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"demo":true,"mask_numbers":true,"sim":true}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(h.close) // runs before srv.Close so the websocket handlers return
	return srv
}

func welcome(presence string, calls ...msg) msg {
	if calls == nil {
		calls = []msg{}
	}
	return msg{"type": "welcome", "v": 1, "agent": "alice", "role": "agent", "session": "s-test",
		"presence": presence, "ice_servers": []any{}, "calls": calls,
		"settings": msg{"mask_numbers": true, "ring_timeout_s": 25, "demo": true}}
}

// ringingCall is a CallInfo as the server sends it: empty optional keys
// (agent, connected_at, payload, media, quality) are left out.
func ringingCall(id, name string) msg {
	now := time.Now().UTC()
	return msg{"id": id, "direction": "user_initiated", "from": "+44*******123", "to": "+15550001111",
		"name": name, "state": "ringing", "created_at": now.Format(time.RFC3339),
		"ring_expires_at": now.Add(25 * time.Second).Format(time.RFC3339)}
}

// withState is c owned by alice in state, with its agent leg's media state
// ("connecting" or "up"; "" leaves it out).
func withState(c msg, state, media string) msg {
	out := msg{}
	for k, v := range c {
		out[k] = v
	}
	delete(out, "ring_expires_at")
	out["state"] = state
	out["agent"] = "alice"
	if media != "" {
		out["media"] = media
	}
	if state == "connected" {
		out["connected_at"] = time.Now().UTC().Format(time.RFC3339)
	}
	return out
}

// callState waits until the in-call pill says text (data-state state).
func callState(t *testing.T, ctx context.Context, state, text string) {
	t.Helper()
	must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`(e => e.dataset.state === %q && e.textContent === %q)(document.querySelector('[data-testid="call-state"]'))`, state, text), step))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAgentPage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	f, err := os.Open(repoPath(t, "testdata/audio/caller-440.ogg"))
	must(t, err)
	packets, err := oggopus.ReadPackets(f)
	f.Close()
	must(t, err)

	h := newHub(t)
	srv := newTestServer(t, h)
	b := browsertest.Start(t, browsertest.Options{FakeAudioCapture: repoPath(t, "testdata/audio/agent-1000.wav")})
	ctx := b.Ctx

	// Sign in from the URL fragment; the token must not stay in the address bar.
	must(t, browsertest.Navigate(ctx, srv.URL+"/agent#token="+testToken))
	if hello := h.expect(t, "hello"); hello.str("token") != testToken || hello["v"] != float64(1) {
		t.Fatalf("hello = %v", hello)
	}
	h.send(t, welcome("away"))
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && !location.hash`, step))
	must(t, browsertest.WaitTrue(ctx, `document.querySelectorAll('[data-testid="history-row"]').length === 3`, step))

	t.Run("presence toggle", func(t *testing.T) {
		must(t, browsertest.Click(ctx, "presence-toggle", step))
		if m := h.expect(t, "presence"); m.str("status") != "available" {
			t.Fatalf("presence = %v", m)
		}
		h.send(t, msg{"type": "presence", "status": "available"})
		must(t, browsertest.WaitTrue(ctx, `document.querySelector('[data-testid="presence-toggle"]').getAttribute('aria-pressed') === 'true'`, step))
		must(t, browsertest.Screenshot(ctx, "agent-idle"))
	})

	t.Run("call_taken stops ringing", func(t *testing.T) {
		// payload is what brought the user (deeplink/CTA): untrusted, shown as text.
		const payload = `<img src=x data-x="1"> spring promo`
		ring := ringingCall("wacid.taken", "Bob")
		ring["payload"] = payload
		h.send(t, msg{"type": "call_offered", "call": ring})
		must(t, browsertest.WaitVisible(ctx, "incoming-call", step))
		if got, _ := browsertest.Text(ctx, "caller-payload"); got != payload {
			t.Errorf("payload shown as %q, want the text %q", got, payload)
		}
		if n, err := browsertest.Eval[int](ctx, `document.querySelectorAll('[data-testid="incoming-call"] img').length`); err != nil || n != 0 {
			t.Errorf("the payload made %d elements (%v)", n, err)
		}
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "ringing" && window.callgwTest.ringing === true`, step))
		if name, _ := browsertest.Text(ctx, "caller-name"); name != "Bob" {
			t.Errorf("caller name = %q", name)
		}
		if num, _ := browsertest.Text(ctx, "caller-number"); num != "+44*******123" {
			t.Errorf("caller number = %q", num)
		}
		h.send(t, msg{"type": "call_taken", "call_id": "wacid.taken", "agent": "bob"})
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && window.callgwTest.ringing === false`, step))
		must(t, browsertest.WaitNotVisible(ctx, "incoming-call", step))
	})

	t.Run("answer a call with real audio", func(t *testing.T) {
		call := ringingCall("wacid.live", "Alice Smith")
		h.send(t, msg{"type": "call_offered", "call": call})
		must(t, browsertest.WaitVisible(ctx, "incoming-call", step))
		must(t, browsertest.Screenshot(ctx, "agent-ringing"))
		must(t, browsertest.Click(ctx, "accept", step))
		acc := h.expect(t, "accept")
		if acc.str("call_id") != "wacid.live" || acc.str("ref") == "" {
			t.Fatalf("accept = %v", acc)
		}
		// The call and the offer that follow the accept carry its ref.
		h.send(t, msg{"type": "call", "ref": acc.str("ref"), "call": withState(call, "connecting", "connecting")})
		callState(t, ctx, "connecting", "Connecting audio…")
		// An offer that followed another tab's command is not this tab's to answer.
		h.send(t, msg{"type": "offer", "ref": "othertab.1", "call_id": "wacid.live", "sdp": "v=0\r\n"})
		h.send(t, msg{"type": "dtmf", "call_id": "wacid.live", "digit": "7"}) // handled after the offer
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.callerKeys === "7"`, step))
		if n, err := browsertest.Eval[int](ctx, `window.callgwTest.offers`); err != nil || n != 0 {
			t.Fatalf("the page answered %d offers meant for another tab (%v)", n, err)
		}
		g := newGatewayPeer(t, h, "wacid.live", acc.str("ref"), packets)
		ans := h.expect(t, "answer")
		if ans.str("call_id") != "wacid.live" || !strings.Contains(ans.str("sdp"), "opus/48000") {
			t.Fatalf("answer = %.200v", ans)
		}
		g.setAnswer(ans.str("sdp"))
		// Answered on WhatsApp while the agent leg still connects, then up.
		h.send(t, msg{"type": "call", "call": withState(call, "connected", "connecting")})
		callState(t, ctx, "connected", "Connecting audio…")
		h.send(t, msg{"type": "call", "call": withState(call, "connected", "up")})
		callState(t, ctx, "connected", "Connected")
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "connected" && window.callgwTest.media === "up" && window.callgwTest.ringing === false`, step))
		// The call's media runs its level and stats intervals.
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.timers.call === 2`, step))

		// The page hears the caller: 440 Hz through its AnalyserNode.
		must(t, browsertest.WaitTrue(ctx, `Math.abs(window.callgwTest.remoteFreq - 440) < 20 && window.callgwTest.remoteLevel > 0.01`, step))
		// The gateway hears the agent: the fake microphone's 1000 Hz.
		pkts, err := g.received(step)
		must(t, err)
		pcm, err := audiotest.DecodeAll(pkts[len(pkts)-100:]) // the last 2 s
		must(t, err)
		if ok, f := audiotest.HasTone(pcm, 1000, 20); !ok {
			t.Fatalf("gateway heard %.0f Hz (rms %.3f), want 1000 Hz", f, audiotest.RMS(pcm))
		}
		// Quality from getStats, and the timer runs.
		must(t, browsertest.WaitTrue(ctx, `(s => s && s.packets_received > 50 && s.rtt_ms !== null && s.quality !== "unknown")(window.callgwTest.stats)`, step))
		must(t, browsertest.WaitTrue(ctx, `/^00:0[1-9]$|^00:[1-5][0-9]$/.test(document.querySelector('[data-testid="call-timer"]').textContent)`, step))

		must(t, browsertest.Click(ctx, "mute", step))
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.muted === true && document.querySelector('[data-testid="mute"]').getAttribute('aria-pressed') === 'true'`, step))
		must(t, browsertest.Click(ctx, "mute", step))
		must(t, browsertest.Click(ctx, "keypad-toggle", step))
		must(t, browsertest.Click(ctx, "dtmf-5", step))
		if m := h.expect(t, "dtmf"); m.str("digits") != "5" || m.str("call_id") != "wacid.live" {
			t.Fatalf("dtmf = %v", m)
		}
		must(t, browsertest.Click(ctx, "dtmf-hash", step))
		if m := h.expect(t, "dtmf"); m.str("digits") != "#" {
			t.Fatalf("dtmf = %v", m)
		}
		must(t, browsertest.Screenshot(ctx, "agent-in-call"))

		must(t, browsertest.Click(ctx, "hangup", step))
		if m := h.expect(t, "hangup"); m.str("call_id") != "wacid.live" {
			t.Fatalf("hangup = %v", m)
		}
		h.send(t, msg{"type": "call_ended", "call_id": "wacid.live", "reason": "agent_hangup", "outcome": "answered", "duration_s": 7})
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && window.callgwTest.lastEnded && window.callgwTest.lastEnded.reason === "agent_hangup"`, step))
		if last, _ := browsertest.Text(ctx, "last-call"); !strings.Contains(last, "You hung up") {
			t.Errorf("last call = %q", last)
		}
		// The call's timers went with it; nothing ticks for a call any more.
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.timers.call === undefined && window.callgwTest.timers.view === undefined`, step))
	})

	t.Run("missed call offers call back", func(t *testing.T) {
		h.send(t, msg{"type": "call_offered", "call": ringingCall("wacid.missed", "Carol")})
		must(t, browsertest.WaitVisible(ctx, "incoming-call", step))
		h.send(t, msg{"type": "call_ended", "call_id": "wacid.missed", "reason": "ring_timeout", "outcome": "missed", "duration_s": 0})
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && document.querySelector('[data-testid="missed-row"][data-call-id="wacid.missed"]') !== null`, step))
	})

	t.Run("dialer permission flow", func(t *testing.T) {
		must(t, browsertest.Type(ctx, "dial-input", "+44 7700 900123\n", step))
		if m := h.expect(t, "permission_query"); m.str("to") != "+447700900123" {
			t.Fatalf("permission_query = %v", m)
		}
		h.send(t, msg{"type": "permission", "to": "+447700900123", "permission": msg{"status": "none", "can_call": false, "can_request": true,
			"requests_left_24h": 1, "requests_left_7d": 2, "calls_left_24h": 100}})
		must(t, browsertest.WaitTrue(ctx, `document.querySelector('[data-testid="permission-state"]').textContent.includes("1 permission request left today, 2 this week")`, step))
		must(t, browsertest.Click(ctx, "request-permission", step))
		req := h.expect(t, "permission_request")
		if req.str("to") != "+447700900123" {
			t.Fatalf("permission_request = %v", req)
		}
		h.send(t, msg{"type": "error", "code": "request_limit_24h", "message": "You already sent a permission request in the last 24 hours.", "ref": req.str("ref")})
		must(t, browsertest.WaitTrue(ctx, `document.querySelector('[data-testid="dial-message"]').textContent === "You already sent a permission request in the last 24 hours."`, step))
		// The user accepts later: the push enables the Call button.
		h.send(t, msg{"type": "permission", "to": "+447700900123", "permission": msg{"status": "temporary", "can_call": true, "can_request": false,
			"expires_at": time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339), "requests_left_24h": 0, "requests_left_7d": 1, "calls_left_24h": 99}})
		must(t, browsertest.Click(ctx, "dial-call", step))
		d := h.expect(t, "dial")
		if d.str("to") != "+447700900123" {
			t.Fatalf("dial = %v", d)
		}
		// The call's first push and the agent leg's offer may overtake the
		// dial's reply, even without a ref (the worst case): the page keeps
		// the offer and answers it once the reply makes the call its own.
		out := msg{"id": "wacid.out", "direction": "business_initiated", "from": "+15550001111", "to": "+447700900123",
			"state": "dialing", "agent": "alice", "created_at": time.Now().UTC().Format(time.RFC3339), "media": "connecting"}
		h.send(t, msg{"type": "call", "call": out})
		g := newGatewayPeer(t, h, "wacid.out", "", packets)
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.callId === "wacid.out"`, step))
		h.send(t, msg{"type": "call", "call": out, "ref": d.str("ref")})
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "dialing" && window.callgwTest.callId === "wacid.out"`, step))
		ans := h.expect(t, "answer")
		if ans.str("call_id") != "wacid.out" {
			t.Fatalf("answer = %.200v", ans)
		}
		g.setAnswer(ans.str("sdp"))
		// The phone rings while the agent leg is already up: "Ringing…" until connected.
		out["media"] = "up"
		h.send(t, msg{"type": "call", "call": out})
		callState(t, ctx, "dialing", "Ringing…")
		h.send(t, msg{"type": "call_ended", "call_id": "wacid.out", "reason": "user_declined", "outcome": "declined", "duration_s": 0})
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle"`, step))
		if last, _ := browsertest.Text(ctx, "last-call"); !strings.Contains(last, "The customer declined") {
			t.Errorf("last call = %q", last)
		}
	})

	t.Run("refused commands show the server's text", func(t *testing.T) {
		// An accept the server refuses: its message, not a text of the page's.
		h.send(t, msg{"type": "call_offered", "call": ringingCall("wacid.refused", "Fay")})
		must(t, browsertest.WaitVisible(ctx, "incoming-call", step))
		must(t, browsertest.Click(ctx, "accept", step))
		acc := h.expect(t, "accept")
		const taken = "another agent took the call"
		h.send(t, msg{"type": "error", "code": "call_taken", "message": taken, "ref": acc.str("ref"), "call_id": "wacid.refused"})
		must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`(e => !e.hidden && e.textContent === %q)(document.querySelector('[data-testid="notice"]'))`, taken), step))
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle" && (e => e && e.code === "call_taken" && e.kind === "accept")(window.callgwTest.lastError)`, step))
		must(t, browsertest.WaitNotVisible(ctx, "incoming-call", step))

		// Meta refuses: the server's reason and Meta's code.
		_, err := browsertest.Eval[bool](ctx, `(document.querySelector('[data-testid="dial-input"]').value = '') === ''`)
		must(t, err)
		must(t, browsertest.Type(ctx, "dial-input", "+1 555 000 2222\n", step))
		q := h.expect(t, "permission_query")
		const refused = "This person has not allowed calls from you. Send a permission request first."
		h.send(t, msg{"type": "error", "code": "meta_error", "message": refused, "meta_code": 138006, "ref": q.str("ref")})
		must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`document.querySelector('[data-testid="dial-message"]').textContent === %q`, refused+" (WhatsApp error 138006)"), step))

		// Without a message, a plain fallback naming the code.
		must(t, browsertest.Click(ctx, "dial-check", step))
		q = h.expect(t, "permission_query")
		h.send(t, msg{"type": "error", "code": "unavailable", "ref": q.str("ref")})
		must(t, browsertest.WaitTrue(ctx, `document.querySelector('[data-testid="dial-message"]').textContent === "The request failed (unavailable)."`, step))
	})

	t.Run("reload re-rings and resumes", func(t *testing.T) {
		// A ringing call survives a reload.
		must(t, browsertest.Navigate(ctx, srv.URL+"/agent"))
		h.expect(t, "hello")
		h.send(t, welcome("available", ringingCall("wacid.again", "Dan")))
		must(t, browsertest.WaitVisible(ctx, "incoming-call", step))
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "ringing" && window.callgwTest.callId === "wacid.again"`, step))
		// A call in progress whose RTCPeerConnection was lost is resumed.
		must(t, browsertest.Navigate(ctx, srv.URL+"/agent"))
		h.expect(t, "hello")
		h.send(t, welcome("available", withState(ringingCall("wacid.resume", "Eve"), "connected", "connecting")))
		if m := h.expect(t, "resume"); m.str("call_id") != "wacid.resume" {
			t.Fatalf("resume = %v", m)
		}
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "connected" && window.callgwTest.callId === "wacid.resume"`, step))
	})

	t.Run("refused sign-in shows the server's text and stops", func(t *testing.T) {
		// End the resumed call first: leaving during a call asks for confirmation.
		h.send(t, msg{"type": "call_ended", "call_id": "wacid.resume", "reason": "user_hangup", "outcome": "answered", "duration_s": 3})
		must(t, browsertest.WaitTrue(ctx, `window.callgwTest.state === "idle"`, step))
		must(t, browsertest.Navigate(ctx, srv.URL+"/agent"))
		h.expect(t, "hello")
		const why = "bad or expired token"
		h.send(t, msg{"type": "error", "code": "unauthenticated", "message": why})
		h.mu.Lock()
		err := h.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "unauthenticated"), time.Now().Add(time.Second))
		h.mu.Unlock()
		must(t, err)
		must(t, browsertest.WaitVisible(ctx, "signin", step))
		must(t, browsertest.WaitTrue(ctx, fmt.Sprintf(`document.querySelector('[data-testid="signin-error"]').textContent === %q && window.callgwTest.state === "signed_out"`, "Sign-in refused: "+why), step))
		// No reconnect, nothing left running.
		must(t, browsertest.WaitTrue(ctx, `Object.keys(window.callgwTest.timers).filter(k => k !== "notice" && k !== "sound").length === 0`, step))
	})
}

func TestSupervisorPage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	h := newHub(t)
	srv := newTestServer(t, h)
	b := browsertest.Start(t, browsertest.Options{})
	ctx := b.Ctx
	must(t, browsertest.Navigate(ctx, srv.URL+"/supervisor#token="+testToken))
	must(t, browsertest.WaitTrue(ctx, `document.querySelectorAll('[data-testid="live-call-row"]').length === 3 && document.querySelectorAll('[data-testid="agent-row"]').length === 4`, step))
	must(t, browsertest.WaitTrue(ctx, `document.querySelectorAll('[data-testid="usage-bar"]').length === 5`, step))
	// Live data is polled: a second poll arrives without a reload.
	must(t, browsertest.WaitTrue(ctx, `window.callgwTest.polls >= 2`, step))
	if cost, _ := browsertest.Text(ctx, "usage-total-cost"); cost != "$42.8785" {
		t.Errorf("total cost = %q", cost)
	}
	if got, _ := browsertest.Text(ctx, "perm-accepted"); !strings.Contains(got, "141") || !strings.Contains(got, "66%") {
		t.Errorf("accepted = %q", got)
	}
	// The biggest country (GB, most billed seconds) has the longest bar.
	widest, err := browsertest.Eval[string](ctx, `[...document.querySelectorAll('[data-testid="usage-bar"]')].sort((a,b)=>b.width.baseVal.value-a.width.baseVal.value)[0].dataset.country`)
	must(t, err)
	if widest != "GB" {
		t.Errorf("widest bar = %s, want GB", widest)
	}
	must(t, browsertest.Screenshot(ctx, "supervisor"))
}
