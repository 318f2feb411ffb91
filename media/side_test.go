package media

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// trackRec records what a browser-like peer receives, per track id (our
// tracks, on the agent leg and side legs alike: "audio" the caller,
// "side" the other party).
type trackRec struct {
	mu     sync.Mutex
	got    map[string][]rxPacket
	notify chan struct{}
}

func recordTracks(p *peer) *trackRec {
	r := &trackRec{got: map[string][]rxPacket{}, notify: make(chan struct{}, 1)}
	p.pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
		go p.drainRTCP(rc)
		id := tr.ID()
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(append([]byte(nil), buf[:n]...)) != nil {
				continue
			}
			r.mu.Lock()
			r.got[id] = append(r.got[id], rxPacket{at: time.Now(), pt: pkt.PayloadType, seq: pkt.SequenceNumber,
				ts: pkt.Timestamp, payload: pkt.Payload})
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
	})
	return r
}

func (r *trackRec) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[id])
}

func (r *trackRec) payloads(id string, last int) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got[id]
	if last > 0 && len(g) > last {
		g = g[len(g)-last:]
	}
	out := make([][]byte, 0, len(g))
	for _, p := range g {
		if p.pt == 111 && !isSilence(p.payload) {
			out = append(out, p.payload)
		}
	}
	return out
}

func (r *trackRec) waitCount(ctx context.Context, t *testing.T, id string, n int) {
	t.Helper()
	for r.count(id) < n {
		select {
		case <-r.notify:
		case <-ctx.Done():
			t.Fatalf("track %q: %d packets, waited for %d", id, r.count(id), n)
		}
	}
}

// wantTone decodes the last packets of a payload list and checks the tone.
func wantTone(t *testing.T, what string, pkts [][]byte, hz float64) {
	t.Helper()
	if len(pkts) < 25 {
		t.Fatalf("%s: only %d audio packets", what, len(pkts))
	}
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, f := audiotest.HasTone(pcm, hz, 15); !ok {
		t.Fatalf("%s: dominant %.0f Hz, want %.0f", what, f, hz)
	}
}

// sideHarness is a bridge with a WhatsApp peer, an agent peer and side
// peers, all recording per track.
type sideHarness struct {
	*harness
	agentRec *trackRec
	sideMu   sync.Mutex
	sides    map[string]*peer
	sideSt   chan LegState
}

func newSideHarness(t *testing.T) *sideHarness {
	t.Helper()
	e := newTestEngine(t, nil)
	h := &harness{t: t, e: e, waState: make(chan LegState, 64), agState: make(chan LegState, 64),
		timeout: make(chan struct{}, 4), dtmf: make(chan rune, 32)}
	sh := &sideHarness{harness: h, sides: map[string]*peer{}, sideSt: make(chan LegState, 64)}
	b, err := e.NewBridge("call-side", Events{
		OnAgentCandidate: func(c webrtc.ICECandidateInit) {
			if p := h.agent.Load(); p != nil {
				p.addCandidate(c)
			}
		},
		OnAgentState:    func(s LegState) { h.agState <- s },
		OnWhatsAppState: func(s LegState) { h.waState <- s },
		OnSideCandidate: func(id string, c webrtc.ICECandidateInit) {
			sh.sideMu.Lock()
			p := sh.sides[id]
			sh.sideMu.Unlock()
			if p != nil {
				p.addCandidate(c)
			}
		},
		OnSideState: func(_ string, s LegState) { sh.sideSt <- s },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	t.Cleanup(func() { _ = b.Close() })
	return sh
}

// connectAgentRec is connectAgent with a per-track recorder.
func (sh *sideHarness) connectAgentRec(ctx context.Context) *peer {
	t := sh.t
	p := newAgentPeer(t, true)
	sh.agentRec = recordTracks(p)
	sh.agent.Store(p)
	offer, err := sh.b.OfferAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = sh.b.AddAgentCandidate(c.ToJSON())
		}
	})
	if err := sh.b.SetAgentAnswer(p.answer(ctx, offer, true)); err != nil {
		t.Fatal(err)
	}
	waitState(ctx, t, sh.agState, LegConnected)
	p.waitConnected(ctx)
	return p
}

// connectSide opens side leg id in mode m with a recording browser-like peer.
func (sh *sideHarness) connectSide(ctx context.Context, id string, m SideMode) (*peer, *trackRec) {
	t := sh.t.(*testing.T)
	t.Helper()
	p := newAgentPeer(t, true)
	rec := recordTracks(p)
	sh.sideMu.Lock()
	sh.sides[id] = p
	sh.sideMu.Unlock()
	offer, err := sh.b.OfferSide(ctx, id, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a=msid:callgw-call-side audio", "a=msid:callgw-call-side side"} {
		if !hasLine(offer, want) {
			t.Fatalf("side offer lacks %q", want)
		}
	}
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = sh.b.AddSideCandidate(id, c.ToJSON())
		}
	})
	if err := sh.b.SetSideAnswer(id, p.answer(ctx, offer, true)); err != nil {
		t.Fatal(err)
	}
	waitState(ctx, t, sh.sideSt, LegConnected)
	p.waitConnected(ctx)
	return p, rec
}

// checkWAContinuous: one SSRC (the peer records one stream), seq +1 and ts
// advancing by 960 (20 ms) or by a DTMF/agent step, never backwards.
func checkWAContinuous(t *testing.T, got []rxPacket) {
	t.Helper()
	if len(got) < 100 {
		t.Fatalf("only %d packets toward whatsapp", len(got))
	}
	for i := 1; i < len(got); i++ {
		p, c := got[i-1], got[i]
		if c.seq != p.seq+1 {
			t.Fatalf("packet %d: seq %d after %d", i, c.seq, p.seq)
		}
		if d := c.ts - p.ts; d != 960 {
			t.Fatalf("packet %d: ts step %d, want 960", i, int64(c.ts)-int64(p.ts))
		}
	}
}

func nonSilence(got []rxPacket) int {
	n := 0
	for _, g := range got {
		if g.pt == 111 && !isSilence(g.payload) {
			n++
		}
	}
	return n
}

func TestSideListen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh := newSideHarness(t)
	sh.connectWhatsApp(ctx)
	sh.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	ag := sh.connectAgentRec(ctx)
	ag.play(loadOpus(t, "agent-1000.ogg"), nil, nil)

	sp, rec := sh.connectSide(ctx, "sup-1", SideListen)
	sp.play(loadOpus(t, "agent-1000.ogg"), nil, nil) // a listener's microphone reaches nobody
	rec.waitCount(ctx, t, "audio", 100)
	rec.waitCount(ctx, t, "side", 100)
	wantTone(t, "listener, caller track", rec.payloads("audio", 100), 440)
	wantTone(t, "listener, agent track", rec.payloads("side", 100), 1000)
	sh.agentRec.waitCount(ctx, t, "audio", 150)
	if n := sh.agentRec.count("side"); n != 0 {
		t.Fatalf("agent received %d packets from a listener", n)
	}
	if m, ok := sh.b.SideMode("sup-1"); !ok || m != SideListen {
		t.Fatalf("SideMode = %v %v", m, ok)
	}
	if err := sh.b.CloseSide("sup-1"); err != nil {
		t.Fatal(err)
	}
	if err := sh.b.CloseSide("sup-1"); !errors.Is(err, ErrNoSide) {
		t.Fatalf("second CloseSide: %v", err)
	}
	wantTone(t, "agent still hears the caller", sh.agentRec.payloads("audio", 100), 440)
	checkWAContinuous(t, sh.meta.received())
}

func TestSideWhisper(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh := newSideHarness(t)
	sh.connectWhatsApp(ctx)
	sh.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	sh.connectAgentRec(ctx) // the agent says nothing

	sp, rec := sh.connectSide(ctx, "sup-1", SideWhisper)
	sp.play(loadOpus(t, "agent-1000.ogg"), nil, nil)
	sh.agentRec.waitCount(ctx, t, "side", 150)
	wantTone(t, "agent hears the whisper", sh.agentRec.payloads("side", 100), 1000)
	wantTone(t, "agent hears the caller", sh.agentRec.payloads("audio", 100), 440)
	rec.waitCount(ctx, t, "audio", 100)
	wantTone(t, "supervisor hears the caller", rec.payloads("audio", 100), 440)
	if n := nonSilence(sh.meta.received()); n != 0 {
		t.Fatalf("whatsapp received %d audio packets during a whisper, want silence only", n)
	}
	// A second talking side is refused; a listener is not.
	if _, err := sh.b.OfferSide(ctx, "sup-2", SideWhisper); !errors.Is(err, ErrSideBusy) {
		t.Fatalf("second whisper: %v", err)
	}
	if _, err := sh.b.OfferSide(ctx, "sup-1", SideListen); !errors.Is(err, ErrSideExists) {
		t.Fatalf("same id: %v", err)
	}
	if _, err := sh.b.OfferSide(ctx, "sup-3", SideMode(9)); !errors.Is(err, ErrBadSideMode) {
		t.Fatalf("bad mode: %v", err)
	}
	checkWAContinuous(t, sh.meta.received())
}

func TestSideTakeOverAndPromote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sh := newSideHarness(t)
	sh.connectWhatsApp(ctx)
	sh.meta.play(loadOpus(t, "agent-1000.ogg"), nil, nil) // here the caller is 1000 Hz
	ag := sh.connectAgentRec(ctx)
	ag.play(loadOpus(t, "caller-440.ogg"), nil, nil) // and the agent 440 Hz

	sp, rec := sh.connectSide(ctx, "sup-1", SideListen)
	sup := loadOpus(t, "agent-1000.ogg")
	sp.play(sup, nil, nil) // the supervisor: 1000 Hz, heard by WhatsApp only once it takes over
	sh.meta.waitFor(ctx, "agent audio at whatsapp", func(got []rxPacket) bool { return nonSilence(got) >= 100 })
	waPkts := func(last int) [][]byte {
		got := sh.meta.received()
		var out [][]byte
		for _, g := range got[len(got)-last:] {
			if !isSilence(g.payload) {
				out = append(out, g.payload)
			}
		}
		return out
	}
	wantTone(t, "whatsapp before take-over", waPkts(50), 440)

	if err := sh.b.SetSideMode("sup-1", SideTakeOver); err != nil {
		t.Fatal(err)
	}
	n0 := len(sh.meta.received())
	sh.meta.waitFor(ctx, "supervisor audio at whatsapp", func(got []rxPacket) bool { return len(got) >= n0+100 })
	wantTone(t, "whatsapp during take-over", waPkts(50), 1000)
	sh.agentRec.waitCount(ctx, t, "side", 50)
	wantTone(t, "agent hears the supervisor", sh.agentRec.payloads("side", 50), 1000)

	if err := sh.b.PromoteSide("nope"); !errors.Is(err, ErrNoSide) {
		t.Fatalf("promote unknown: %v", err)
	}
	if err := sh.b.PromoteSide("sup-1"); err != nil {
		t.Fatal(err)
	}
	if len(sh.b.Sides()) != 0 {
		t.Fatalf("sides after promote: %v", sh.b.Sides())
	}
	c0 := rec.count("audio")
	n1 := len(sh.meta.received())
	sh.meta.waitFor(ctx, "promoted leg at whatsapp", func(got []rxPacket) bool { return len(got) >= n1+100 })
	wantTone(t, "whatsapp after promote", waPkts(50), 1000)
	rec.waitCount(ctx, t, "audio", c0+100)
	wantTone(t, "promoted leg hears the caller", rec.payloads("audio", 100), 1000)
	rec.mu.Lock()
	got := append([]rxPacket(nil), rec.got["audio"]...)
	rec.mu.Unlock()
	for i := 1; i < len(got); i++ { // the caller track stayed one stream across promotion
		if got[i].seq != got[i-1].seq+1 {
			t.Fatalf("caller track seq %d after %d", got[i].seq, got[i-1].seq)
		}
	}
	checkWAContinuous(t, sh.meta.received())
	if st := sh.b.Stats(); st.Agent.PacketsReceived == 0 {
		t.Fatalf("agent stats after promote: %+v", st.Agent)
	}
}

func TestSideConsult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sh := newSideHarness(t)
	sh.connectWhatsApp(ctx)
	sh.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	ag := sh.connectAgentRec(ctx)
	ag.play(loadOpus(t, "agent-1000.ogg"), nil, nil) // agent A: 1000 Hz
	hold, err := BuiltinPrompt("hold")
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.b.Hold(true, hold); err != nil {
		t.Fatal(err)
	}
	sp, rec := sh.connectSide(ctx, "consult", SideConsult)
	sp.play(loadOpus(t, "caller-440.ogg"), nil, nil) // agent B: 440 Hz
	rec.waitCount(ctx, t, "side", 100)
	sh.agentRec.waitCount(ctx, t, "side", 100)
	wantTone(t, "B hears A", rec.payloads("side", 100), 1000)
	wantTone(t, "A hears B", sh.agentRec.payloads("side", 100), 440)
	if n := rec.count("audio"); n != 0 {
		t.Fatalf("the consulted agent heard %d caller packets", n)
	}
	// The WhatsApp peer hears the hold music, packet for packet.
	n0 := len(sh.meta.received())
	sh.meta.waitFor(ctx, "hold music", func(got []rxPacket) bool { return len(got) >= n0+100 })
	got := sh.meta.received()[n0:]
	matches := func(start int) bool {
		for i, g := range got {
			if string(g.payload) != string(hold.pkts[(start+i)%len(hold.pkts)]) {
				return false
			}
		}
		return true
	}
	found := false
	for i := range hold.pkts { // the music repeats packets: try every start
		if matches(i) {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("the WhatsApp peer does not hear the hold music, packet for packet")
	}
	// Complete: B becomes the agent, the hold ends, the caller hears B.
	if err := sh.b.PromoteSide("consult"); err != nil {
		t.Fatal(err)
	}
	if err := sh.b.Hold(false, nil); err != nil {
		t.Fatal(err)
	}
	n1 := len(sh.meta.received())
	sh.meta.waitFor(ctx, "B at the WhatsApp peer", func(got []rxPacket) bool { return len(got) >= n1+100 })
	var last [][]byte
	for _, g := range sh.meta.received()[len(sh.meta.received())-50:] {
		last = append(last, g.payload)
	}
	wantTone(t, "caller hears B", last, 440)
	rec.waitCount(ctx, t, "audio", 50)
	wantTone(t, "B hears the caller", rec.payloads("audio", 50), 440)
	checkWAContinuous(t, sh.meta.received())
}

// nopWriter is a TrackLocalWriter that sends nothing (allocation tests).
type nopWriter struct{}

func (nopWriter) WriteRTP(*rtp.Header, []byte) (int, error) { return 0, nil }
func (nopWriter) Write(b []byte) (int, error)               { return len(b), nil }

func TestSideRelayAllocatesNothing(t *testing.T) {
	tr := newOutTrack("caller", "x")
	tr.b.Store(&binding{w: nopWriter{}, ssrc: 7, ptOpus: 111, ptTE: 126})
	var r relay
	h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 1, Timestamp: 960, SSRC: 42}
	payload := make([]byte, 80)
	src := uint32(42)
	allocs := testing.AllocsPerRun(1000, func() {
		h.SequenceNumber++
		h.Timestamp += 960
		if src == 42 && h.SequenceNumber%100 == 0 {
			src = 43 // a source change re-anchors without allocating
		}
		r.write(tr, src, &h, payload, true, false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per relayed packet", allocs)
	}
	if r.count() == 0 {
		t.Fatal("nothing relayed")
	}
}
