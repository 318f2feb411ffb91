package media

import (
	"context"
	"testing"
	"time"
)

// checkContinuity asserts what Meta must see from us: one SSRC, sequence
// numbers +1 per packet, timestamps advancing by each Opus packet's samples
// (an RFC 4733 event keeps its start timestamp on all its packets and the
// next packet follows it by one frame per event packet), and no arrival gap
// longer than maxGap (after a 60 ms prompt packet: its 60 ms plus 20 ms of
// jitter, the gap such a packet means by itself). It returns the largest
// gap after packets of 40 ms or less.
func checkContinuity(t *testing.T, got []rxPacket, maxGap time.Duration) time.Duration {
	t.Helper()
	if len(got) < 2 {
		t.Fatalf("only %d packets", len(got))
	}
	var (
		next      = got[0].ts
		eventTS   uint32
		eventPkts uint32
		inEvent   bool
		worst     time.Duration
	)
	for i, g := range got {
		if g.ssrc != got[0].ssrc {
			t.Fatalf("packet %d: ssrc %08x, first was %08x", i, g.ssrc, got[0].ssrc)
		}
		if i > 0 {
			if p := got[i-1]; g.seq != p.seq+1 {
				t.Fatalf("packet %d: seq %d after %d", i, g.seq, p.seq)
			}
			gap := g.at.Sub(got[i-1].at)
			allowed := maxGap
			if n, err := opusPacketSamples(got[i-1].payload); err == nil && got[i-1].pt != 126 && n > 2*opusFrameTicks {
				allowed = max(maxGap, time.Duration(n)*time.Second/48000+20*time.Millisecond)
			} else {
				worst = max(worst, gap)
			}
			if gap > allowed {
				for j := max(i-8, 0); j < min(i+4, len(got)); j++ {
					t.Logf("  %d pt %d seq %d ts %d at +%v silence %v len %d", j, got[j].pt, got[j].seq, got[j].ts, got[j].at.Sub(got[0].at), isSilence(got[j].payload), len(got[j].payload))
				}
				t.Fatalf("packet %d (pt %d): arrived %v after the previous one", i, g.pt, gap)
			}
		}
		if g.pt == 126 {
			if inEvent && g.ts == eventTS {
				eventPkts++
			} else {
				if g.ts != next {
					t.Fatalf("packet %d: DTMF event at ts %d, want %d", i, g.ts, next)
				}
				inEvent, eventTS, eventPkts = true, g.ts, 1
			}
			next = eventTS + eventPkts*opusFrameTicks
			continue
		}
		inEvent = false
		if g.ts != next {
			t.Fatalf("packet %d: ts %d, want %d (step %d)", i, g.ts, next, int64(g.ts)-int64(got[max(i-1, 0)].ts))
		}
		n, err := opusPacketSamples(g.payload)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		next = g.ts + n
	}
	return worst
}

// TestRTPContinuity walks a call through everything that changes what we
// send toward WhatsApp — agent audio, a prompt, hold and resume, DTMF, the
// agent leg replaced, then a long stretch with nothing from the agent — and
// checks at the WhatsApp peer one SSRC, seq +1, timestamps by samples and
// no arrival gap over 60 ms (Meta drops calls that go quiet).
func TestRTPContinuity(t *testing.T) {
	quiet := 20 * time.Second
	if testing.Short() {
		quiet = 3 * time.Second
	}
	for _, tc := range []struct {
		path  PacketPath
		quiet time.Duration
	}{
		{PathPion, quiet},
		{PathFast, min(quiet, 5*time.Second)},
	} {
		t.Run(tc.path.String(), func(t *testing.T) {
			t.Parallel()
			testRTPContinuity(t, tc.path, tc.quiet)
		})
	}
}

func testRTPContinuity(t *testing.T, path PacketPath, quiet time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), quiet+90*time.Second)
	defer cancel()
	e := newTestEngine(t, func(c *Config) { c.PacketPath = path })
	h := newHarness(t, e)
	h.connectWhatsApp(ctx)
	agentAudio := loadOpus(t, "agent-1000.ogg")
	agentSet := payloadSet(agentAudio)
	ag := h.connectAgent(ctx)
	ag.play(agentAudio, nil, nil)
	h.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	agentFlows := func(what string) {
		t.Helper()
		mark := len(h.meta.received())
		h.meta.waitFor(ctx, what, func(got []rxPacket) bool { return countIn(got[mark:], agentSet) >= 15 })
	}
	agentFlows("agent audio")

	done, err := h.b.Play([]*Prompt{loadPrompt(t, "tone-700.opus"), loadPrompt(t, "tone-700-60ms.opus"),
		loadPrompt(t, "tone-700-10ms.opus")}, PlayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(ctx, t, done, "prompts")
	agentFlows("agent audio after the prompts")

	if err := h.b.Hold(true, nil); err != nil {
		t.Fatal(err)
	}
	hold, _ := BuiltinPrompt("hold")
	mark := len(h.meta.received())
	h.meta.waitFor(ctx, "hold music", func(got []rxPacket) bool { return countIn(got[mark:], payloadSet(hold.pkts)) >= 30 })
	if err := h.b.Hold(false, nil); err != nil {
		t.Fatal(err)
	}
	agentFlows("agent audio after resume")

	if err := h.b.SendDTMF("1#"); err != nil {
		t.Fatal(err)
	}
	mark = len(h.meta.received())
	h.meta.waitFor(ctx, "two DTMF events", func(got []rxPacket) bool {
		ends := 0
		for _, g := range got[mark:] {
			if ev, ok := parseTelephoneEvent(g.payload); ok && g.pt == 126 && ev.End {
				ends++
			}
		}
		return ends == 6
	})
	agentFlows("agent audio after DTMF")

	// The agent reloads its page: a new leg that sends nothing.
	ag2 := newAgentPeer(t, true)
	h.agent.Store(ag2)
	offer, err := h.b.OfferAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	replaced := time.Now()
	ag.close()
	if err := h.b.SetAgentAnswer(ag2.answer(ctx, offer, false)); err != nil {
		t.Fatal(err)
	}
	h.meta.waitFor(ctx, "a quiet stretch", func(got []rxPacket) bool {
		return len(got) > 0 && got[len(got)-1].at.Sub(replaced) >= quiet
	})
	got := h.meta.received()
	// Under the race detector (~10x CPU per packet) on a shared 2-core box,
	// the test process itself stalls for tens of ms now and then (the pacer,
	// or the test peer's read loop): the 60 ms goal is checked without it.
	maxGap := 60 * time.Millisecond
	if raceEnabled {
		maxGap = 100 * time.Millisecond
	}
	worst := checkContinuity(t, got, maxGap)
	t.Logf("%d packets over %v toward whatsapp: one ssrc, seq +1, ts by samples; largest arrival gap %v (not counting after 60 ms packets)",
		len(got), got[len(got)-1].at.Sub(got[0].at).Round(time.Millisecond), worst)
}
