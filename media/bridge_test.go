package media

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

// testPath is the packet path of the tests' engines:
// CALLGW_TEST_MEDIA_PATH=fast|pion (default: the package default).
var testPath PacketPath

func TestMain(m *testing.M) {
	p, err := ParsePacketPath(cmp.Or(os.Getenv("CALLGW_TEST_MEDIA_PATH"), "default"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testPath = p
	goleak.VerifyTestMain(m)
}

// harness is one bridge with its Meta-like and agent peers.
type harness struct {
	t       testing.TB
	e       *Engine
	b       *Bridge
	meta    *peer
	agent   atomic.Pointer[peer]
	waState chan LegState
	agState chan LegState
	timeout chan struct{}
	dtmf    chan rune
	plain   bool // peers without report interceptors (allocation benchmarks)
	// hold: connectWhatsApp does not call StartWhatsAppMedia (as before
	// accept returned 200).
	hold bool
}

func newTestEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	cfg := Config{LoopbackOnly: true, PacketPath: testPath}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewEngine(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func newHarness(t testing.TB, e *Engine) *harness {
	t.Helper()
	h := &harness{t: t, e: e, waState: make(chan LegState, 64), agState: make(chan LegState, 64),
		timeout: make(chan struct{}, 4), dtmf: make(chan rune, 32)}
	b, err := e.NewBridge("call-1", Events{
		OnAgentCandidate: func(c webrtc.ICECandidateInit) {
			if p := h.agent.Load(); p != nil {
				p.addCandidate(c)
			}
		},
		OnAgentState:    func(s LegState) { h.agState <- s },
		OnWhatsAppState: func(s LegState) { h.waState <- s },
		OnMediaTimeout:  func() { h.timeout <- struct{}{} },
		OnDTMF:          func(d rune) { h.dtmf <- d },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	t.Cleanup(func() { _ = b.Close() })
	return h
}

func waitState(ctx context.Context, t testing.TB, ch chan LegState, want LegState) {
	t.Helper()
	for {
		select {
		case s := <-ch:
			if s == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for leg state %v", want)
		}
	}
}

// connectWhatsApp runs the inbound flow: Meta offer -> our answer.
func (h *harness) connectWhatsApp(ctx context.Context) string {
	h.t.Helper()
	h.meta = newMetaPeer(h.t, !h.plain)
	answer, err := h.b.AnswerWhatsApp(ctx, h.meta.offer(ctx))
	if err != nil {
		h.t.Fatal(err)
	}
	h.meta.setAnswer(answer)
	waitState(ctx, h.t, h.waState, LegConnected)
	h.meta.waitConnected(ctx)
	if !h.hold {
		if err := h.b.StartWhatsAppMedia(); err != nil {
			h.t.Fatal(err)
		}
	}
	return answer
}

// connectAgent runs OfferAgent with a new browser-like peer.
func (h *harness) connectAgent(ctx context.Context) *peer {
	h.t.Helper()
	p := newAgentPeer(h.t, !h.plain)
	h.agent.Store(p)
	offer, err := h.b.OfferAgent(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = h.b.AddAgentCandidate(c.ToJSON())
		}
	})
	answer := p.answer(ctx, offer, true)
	if err := h.b.SetAgentAnswer(answer); err != nil {
		h.t.Fatal(err)
	}
	waitState(ctx, h.t, h.agState, LegConnected)
	p.waitConnected(ctx)
	return p
}

func countPT(got []rxPacket, pt uint8, skipSilence bool) int {
	n := 0
	for _, g := range got {
		if g.pt == pt && !(skipSilence && isSilence(g.payload)) {
			n++
		}
	}
	return n
}

// checkContiguous asserts that got is, in order and without gaps, a run of
// the payloads the sender sent (sentIdx indexes pkts).
func checkContiguous(t *testing.T, name string, got [][]byte, pkts [][]byte, sentIdx []int) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: nothing received", name)
	}
	start := -1
	for i, idx := range sentIdx {
		if string(pkts[idx]) == string(got[0]) {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s: first received payload was never sent", name)
	}
	for i, g := range got {
		if start+i >= len(sentIdx) {
			t.Fatalf("%s: received more packets (%d) than sent after the first", name, len(got))
		}
		if string(pkts[sentIdx[start+i]]) != string(g) {
			t.Fatalf("%s: payload %d differs from sent payload %d (loss, reorder or corruption)", name, i, start+i)
		}
	}
}

func TestBridgeEndToEnd(t *testing.T) {
	for _, path := range []PacketPath{PathPion, PathFast} {
		t.Run(path.String(), func(t *testing.T) { testBridgeEndToEnd(t, path) })
	}
}

func testBridgeEndToEnd(t *testing.T, path PacketPath) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newTestEngine(t, func(c *Config) { c.PacketPath = path })
	h := newHarness(t, e)
	caller := loadOpus(t, "caller-440.ogg")
	agentAudio := loadOpus(t, "agent-1000.ogg")

	answer := h.connectWhatsApp(ctx)
	t.Run("answer is DTLS active, Opus+telephone-event only, controlling ICE", func(t *testing.T) {
		for _, want := range []string{"a=setup:active", "a=mid:audio", "a=group:BUNDLE audio", "a=rtcp-mux",
			"a=rtpmap:111 opus/48000/2", "a=rtpmap:126 telephone-event/8000", "a=fmtp:111 " + metaOpusFmtp} {
			if !hasLine(answer, want) {
				t.Errorf("answer lacks %q:\n%s", want, answer)
			}
		}
		if n := strings.Count(answer, "a=rtpmap:"); n != 2 {
			t.Errorf("answer has %d codecs, want 2", n)
		}
		if n := strings.Count(answer, "a=ssrc:") - strings.Count(answer, "a=ssrc-group"); n < 1 || strings.Contains(answer, "a=ssrc-group") {
			t.Errorf("answer must carry exactly one ssrc")
		}
		if role := h.b.waLeg().pc.SCTP().Transport().ICETransport().Role(); role != webrtc.ICERoleControlling {
			t.Errorf("whatsapp ICE role = %v, want controlling", role)
		}
		if role := h.meta.pc.SCTP().Transport().ICETransport().Role(); role != webrtc.ICERoleControlled {
			t.Errorf("meta ICE role = %v, want controlled", role)
		}
	})

	t.Run("silence before the agent joins; caller audio read and counted", func(t *testing.T) {
		var mu sync.Mutex
		var callerSent []int
		h.meta.play(caller, &callerSent, &mu)
		h.meta.waitFor(ctx, "10 silence frames", func(got []rxPacket) bool {
			n := 0
			for _, g := range got {
				if g.pt == 111 && isSilence(g.payload) {
					n++
				}
			}
			return n >= 10
		})
		deadline := time.Now().Add(10 * time.Second)
		for h.b.Stats().WhatsApp.PacketsReceived < 5 {
			if time.Now().After(deadline) {
				t.Fatal("whatsapp packets not counted while no agent")
			}
			<-h.meta.notify
		}
	})

	// Agent joins: both directions carry real Opus.
	var agentSentMu sync.Mutex
	var agentSent []int
	a1 := h.connectAgent(ctx)
	if fast := h.b.waLeg().fast.Load() != nil && h.b.agent.Load().fast.Load() != nil; fast != (path == PathFast) {
		t.Fatalf("path %v: legs on the fast path = %v", path, fast)
	}
	a1.play(agentAudio, &agentSent, &agentSentMu)
	a1.waitFor(ctx, "150 caller packets at the agent", func(got []rxPacket) bool { return countPT(got, 111, false) >= 150 })
	h.meta.waitFor(ctx, "150 agent packets at meta", func(got []rxPacket) bool { return countPT(got, 111, true) >= 150 })

	t.Run("caller audio reaches the agent intact and as 440 Hz", func(t *testing.T) {
		var got [][]byte
		for _, g := range a1.received() {
			got = append(got, g.payload)
		}
		h.meta.sendMu.Lock()
		// callerSent is appended by the player; read a copy under its lock below
		h.meta.sendMu.Unlock()
		checkContiguousFromPeer(t, "to agent", got, caller, h.meta)
		pcm, err := audiotest.DecodeAll(got)
		if err != nil {
			t.Fatal(err)
		}
		if ok, f := audiotest.HasTone(pcm, 440, 15); !ok {
			t.Fatalf("agent hears %v Hz, want 440", f)
		}
	})
	t.Run("agent audio reaches WhatsApp intact and as 1000 Hz", func(t *testing.T) {
		var got [][]byte
		for _, g := range h.meta.received() {
			if g.pt == 111 && !isSilence(g.payload) {
				got = append(got, g.payload)
			}
		}
		agentSentMu.Lock()
		sent := append([]int(nil), agentSent...)
		agentSentMu.Unlock()
		checkContiguous(t, "to whatsapp", got, agentAudio, sent)
		pcm, err := audiotest.DecodeAll(got)
		if err != nil {
			t.Fatal(err)
		}
		if ok, f := audiotest.HasTone(pcm, 1000, 15); !ok {
			t.Fatalf("caller hears %v Hz, want 1000", f)
		}
	})

	// Replace the agent leg (page reload): WhatsApp continuity must hold.
	a1.close()
	before := countPT(h.meta.received(), 111, true)
	var agent2Sent []int
	a2 := h.connectAgent(ctx)
	a2.play(agentAudio, &agent2Sent, &agentSentMu)
	h.meta.waitFor(ctx, "agent 2 audio at meta", func(got []rxPacket) bool { return countPT(got, 111, true) >= before+50 })
	a2.waitFor(ctx, "caller audio at agent 2", func(got []rxPacket) bool { return countPT(got, 111, false) >= 50 })

	t.Run("seq and ts toward WhatsApp are continuous across silence, agent and replacement", func(t *testing.T) {
		got := h.meta.received()
		if len(got) < 200 {
			t.Fatalf("only %d packets", len(got))
		}
		for i := 1; i < len(got); i++ {
			p, c := got[i-1], got[i]
			if c.seq != p.seq+1 {
				t.Fatalf("packet %d: seq %d after %d", i, c.seq, p.seq)
			}
			if c.ts != p.ts+960 {
				t.Fatalf("packet %d: ts step %d, want 960", i, int64(c.ts)-int64(p.ts))
			}
		}
	})

	t.Run("stats", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		var s Stats
		for {
			s = h.b.Stats()
			if s.WhatsApp.RTT > 0 && s.Agent.RTT > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no RTT from RTCP: %+v", s)
			}
			<-h.meta.notify
		}
		if s.WhatsApp.PacketsReceived == 0 || s.WhatsApp.PacketsSent == 0 || s.Agent.PacketsReceived == 0 || s.Agent.PacketsSent == 0 {
			t.Fatalf("counters: %+v", s)
		}
		if s.WhatsApp.LastPacketAt.IsZero() || s.WhatsApp.PacketsLost != 0 {
			t.Fatalf("whatsapp leg: %+v", s.WhatsApp)
		}
		t.Logf("stats: %+v", s)
		if v := testutil.ToFloat64(e.metrics.fwdToAgent); v == 0 {
			t.Fatal("forwarded metric not counted")
		}
		// jitter and RTT histograms: one sample per leg per RTCP interval
		for {
			var missing []string
			for _, k := range []legKind{legWhatsApp, legAgent} {
				if sampleCount(t, e.metrics.jitter[k]) == 0 {
					missing = append(missing, "jitter "+k.String())
				}
				if sampleCount(t, e.metrics.rtt[k]) == 0 {
					missing = append(missing, "rtt "+k.String())
				}
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("histograms without samples: %v", missing)
			}
			<-h.meta.notify
		}
		if n := testutil.CollectAndCount(e.metrics.RTT, "callgw_media_rtt_seconds"); n != 2 {
			t.Fatalf("rtt series = %d, want 2 (one per leg)", n)
		}
	})

	if err := h.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := e.ActiveBridges(); n != 0 {
		t.Fatalf("active bridges after close = %d", n)
	}
	if _, err := h.b.OfferAgent(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("OfferAgent after close: %v", err)
	}
}

// sampleCount returns how many observations a histogram child holds.
func sampleCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// checkContiguousFromPeer checks payloads against the peer's send log.
func checkContiguousFromPeer(t *testing.T, name string, got [][]byte, pkts [][]byte, p *peer) {
	t.Helper()
	p.sendMu.Lock()
	n := len(p.sentLog)
	p.sendMu.Unlock()
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i % len(pkts)
	}
	checkContiguous(t, name, got, pkts, idx)
}
