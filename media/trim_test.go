package media

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

// The private Pion fields the trimming reaches (trim.go) are where it
// expects them: fails when a Pion upgrade moves or retypes one.
func TestPionTrimFields(t *testing.T) {
	if _, err := pionTrimFields(); err != nil {
		t.Fatal(err)
	}
}

// silentSTUN is a "STUN server" on loopback that never answers: an ICE
// gathering given it stays in progress for its STUN gather timeout. The
// channel is closed at its first request, after *at is set to its arrival.
// Its reader ends at cleanup.
func silentSTUN(t *testing.T, at *time.Time) (string, <-chan struct{}) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		buf := make([]byte, 1500)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
			once.Do(func() {
				if at != nil {
					*at = time.Now()
				}
				close(asked)
			})
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return "stun:" + conn.LocalAddr().String(), asked
}

// A gathering in progress is never cancelled: gatherTrim.run does nothing
// while the agent waits for a STUN server, and cancels once the gathering
// completed (twice: harmless).
func TestGatherTrimWaitsForGathering(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, asked := silentSTUN(t, nil)
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(isLoopback4)
	se.SetSTUNGatherTimeout(2 * time.Second)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		ICEServers: []webrtc.ICEServer{{URLs: []string{url}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-ctx.Done():
		t.Fatal("no stun request")
	}
	g, err := newGatherTrim(pc)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := g.run(ctx); ok || err != nil {
		t.Fatalf("gathering in progress: run = %v, %v; want false, nil", ok, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatal("gathering did not complete")
	}
	for i := range 2 {
		if ok, err := g.run(ctx); !ok || err != nil {
			t.Fatalf("gathering complete, run %d = %v, %v; want true, nil", i, ok, err)
		}
	}
	_ = pc.Close()
	if ok, err := g.run(ctx); ok || err == nil {
		t.Fatalf("closed agent: run = %v, %v; want an error", ok, err)
	}
}

// A call whose two fast legs were trimmed (DTLS handshake FSM ended at the
// first packet from each remote, ICE gathering context cancelled once
// gathering completed) keeps working: with short ICE timers, ICE keeps
// both legs connected for longer than the failed timeout (Pion sees only
// STUN on a fast leg, no media), with STUN answers coming in; a remote's
// DTLS close_notify still closes its leg (before any ICE timeout could);
// and after Bridge.Close every goroutine of the call is gone.
func TestTrimmedLegs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const (
		keepalive    = 200 * time.Millisecond
		disconnected = 1500 * time.Millisecond
		failed       = 3 * time.Second
		window       = 4 * time.Second // > failed, 20 keepalives
		stunTimeout  = 5 * time.Second // Pion's default STUN gather timeout
	)
	// The agent leg also gathers from a STUN server that never answers: it
	// connects while its gathering is still in progress (for stunTimeout).
	var askedAt time.Time
	url, asked := silentSTUN(t, &askedAt)
	e := newTestEngine(t, func(c *Config) {
		c.PacketPath = PathFast
		c.ICEKeepalive, c.ICEDisconnectedTimeout, c.ICEFailedTimeout = keepalive, disconnected, failed
		c.AgentICEServers = []webrtc.ICEServer{{URLs: []string{url}}}
	})
	baseline := goleak.IgnoreCurrent()

	h := newHarness(t, e)
	h.connectWhatsApp(ctx)
	ag := h.connectAgent(ctx)
	select {
	case <-asked:
	case <-ctx.Done():
		t.Fatal("the agent leg asked no stun server")
	}
	wa, al := h.b.waLeg(), h.b.agent.Load()
	wfl, afl := wa.fast.Load(), al.fast.Load()
	if wfl == nil || afl == nil {
		t.Fatal("legs not on the fast path")
	}
	audio := loadOpus(t, "caller-440.ogg")
	h.meta.play(audio, nil, nil)
	ag.play(audio, nil, nil)
	trimmed := func() bool {
		if afl.trim.gatherEnded.Load() && time.Since(askedAt) < stunTimeout/2 {
			t.Fatal("agent leg's gathering context cancelled while it waited for the stun server")
		}
		return wfl.trim.handshakeEnded.Load() && afl.trim.handshakeEnded.Load() &&
			wfl.trim.gatherEnded.Load() && afl.trim.gatherEnded.Load()
	}
	waitUntil(ctx, t, h.meta, "both legs trimmed", trimmed)
	t.Logf("trimmed: agent leg's gathering completed %v after its stun request", time.Since(askedAt).Round(time.Millisecond))

	// ICE alone keeps the trimmed legs connected.
	respWA, respAg := stunResponses(t, wa.pc), stunResponses(t, al.pc)
	rxWA, rxAg := h.b.Stats().WhatsApp.PacketsReceived, h.b.Stats().Agent.PacketsReceived
	end := time.After(window)
	for watching := true; watching; {
		select {
		case s := <-h.waState:
			t.Fatalf("trimmed whatsapp leg went %v", s)
		case s := <-h.agState:
			t.Fatalf("trimmed agent leg went %v", s)
		case <-end:
			watching = false
		}
	}
	minResp := uint64(window / keepalive / 4)
	dWA, dAg := stunResponses(t, wa.pc)-respWA, stunResponses(t, al.pc)-respAg
	t.Logf("stun responses in %v: whatsapp leg %d, agent leg %d (keepalive %v)", window, dWA, dAg, keepalive)
	if dWA < minResp || dAg < minResp {
		t.Errorf("stun responses in %v: whatsapp leg %d, agent leg %d; want >= %d each", window, dWA, dAg, minResp)
	}
	st := h.b.Stats()
	if st.WhatsApp.PacketsReceived <= rxWA || st.Agent.PacketsReceived <= rxAg {
		t.Errorf("media stopped: received %d -> %d (whatsapp), %d -> %d (agent)", rxWA, st.WhatsApp.PacketsReceived, rxAg, st.Agent.PacketsReceived)
	}

	// DTLS close_notify from either remote closes its leg.
	firstState := func(ch chan LegState, who string) {
		t.Helper()
		select {
		case s := <-ch:
			if s != LegClosed {
				t.Fatalf("%s leg went %v after its remote closed, want closed (by close_notify)", who, s)
			}
		case <-ctx.Done():
			t.Fatalf("%s leg did not close after its remote did", who)
		}
	}
	h.meta.close()
	firstState(h.waState, "whatsapp")
	ag.close()
	firstState(h.agState, "agent")

	// Closing the bridge ends every goroutine of the call.
	closed := make(chan error, 1)
	go func() { closed <- h.b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Logf("close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Bridge.Close hung on trimmed legs")
	}
	if err := goleak.Find(baseline); err != nil {
		t.Fatalf("goroutines left after Bridge.Close: %v", err)
	}
}

// stunResponses is the number of STUN responses the selected candidate
// pair of pc received (read through the ICE agent: PeerConnection.GetStats
// races Pion's close).
func stunResponses(t *testing.T, pc *webrtc.PeerConnection) uint64 {
	t.Helper()
	s, ok := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok {
		t.Fatal("no selected candidate pair")
	}
	return s.ResponsesReceived
}
