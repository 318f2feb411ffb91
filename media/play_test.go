package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func loadPrompt(t testing.TB, file string) *Prompt {
	t.Helper()
	p, err := LoadPromptFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func payloadSet(pkts [][]byte) map[string]bool {
	m := make(map[string]bool, len(pkts))
	for _, p := range pkts {
		m[string(p)] = true
	}
	return m
}

// countIn counts the packets of got whose payload is in set.
func countIn(got []rxPacket, set map[string]bool) int {
	n := 0
	for _, g := range got {
		if set[string(g.payload)] {
			n++
		}
	}
	return n
}

// promptRun finds, in got, the run of packets that plays p from its first
// packet (looping if longer than p) and returns it; it fails if the run is
// broken (loss, reorder, something else interleaved) before want packets.
func promptRun(t *testing.T, got []rxPacket, p *Prompt, want int) []rxPacket {
	t.Helper()
	start := -1
	for i, g := range got {
		if string(g.payload) == string(p.pkts[0]) {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("prompt %s never started", p.Name())
	}
	var run []rxPacket
	for i, g := range got[start:] {
		if string(g.payload) != string(p.pkts[i%len(p.pkts)]) {
			break
		}
		run = append(run, g)
	}
	if len(run) < want {
		t.Fatalf("prompt %s: run of %d packets, want %d in order without gaps", p.Name(), len(run), want)
	}
	for i := 1; i < len(run); i++ {
		if d := run[i].ts - run[i-1].ts; d != uint32(p.samples[(i-1)%len(p.pkts)]) {
			t.Fatalf("prompt %s packet %d: ts step %d, want %d", p.Name(), i, d, p.samples[(i-1)%len(p.pkts)])
		}
	}
	return run
}

func waitClosed(ctx context.Context, t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func payloads(got []rxPacket) [][]byte {
	out := make([][]byte, len(got))
	for i, g := range got {
		out[i] = g.payload
	}
	return out
}

func checkTone(t *testing.T, what string, pkts [][]byte, want float64) {
	t.Helper()
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		t.Fatal(err)
	}
	if ok, f := audiotest.HasTone(pcm, want, 15); !ok {
		t.Fatalf("%s: %v Hz, want %v", what, f, want)
	}
}

func TestPlayAndHold(t *testing.T) {
	t.Parallel() // mostly waiting on real time: overlap with each other, after the sequential tests
	for _, path := range []PacketPath{PathPion, PathFast} {
		t.Run(path.String(), func(t *testing.T) {
			t.Parallel()
			testPlayAndHold(t, path)
		})
	}
}

func testPlayAndHold(t *testing.T, path PacketPath) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := newTestEngine(t, func(c *Config) { c.PacketPath = path })
	h := newHarness(t, e)
	h.hold = true
	h.connectWhatsApp(ctx)
	tone := loadPrompt(t, "tone-700.opus")
	tone60 := loadPrompt(t, "tone-700-60ms.opus")
	music := loadPrompt(t, "tone-1500.opus")

	t.Run("refused before StartWhatsAppMedia and without prompts", func(t *testing.T) {
		if _, err := h.b.Play([]*Prompt{tone}, PlayOptions{}); !errors.Is(err, ErrMediaNotStarted) {
			t.Fatalf("Play before start: %v", err)
		}
		if err := h.b.Hold(true, music); !errors.Is(err, ErrMediaNotStarted) || h.b.OnHold() {
			t.Fatalf("Hold before start: %v (on hold %v)", err, h.b.OnHold())
		}
		if err := h.b.StartWhatsAppMedia(); err != nil {
			t.Fatal(err)
		}
		for _, ps := range [][]*Prompt{nil, {nil}, {tone, nil}} {
			if _, err := h.b.Play(ps, PlayOptions{}); !errors.Is(err, ErrNoPrompt) {
				t.Fatalf("Play(%v): %v", ps, err)
			}
		}
		if h.b.Playing() {
			t.Fatal("playing after refused Play calls")
		}
		h.b.StopPlayback() // no-op
	})

	agentAudio := loadOpus(t, "agent-1000.ogg")
	agentSet := payloadSet(agentAudio)
	ag := h.connectAgent(ctx)
	ag.play(agentAudio, nil, nil)
	h.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	h.meta.waitFor(ctx, "agent audio at whatsapp", func(got []rxPacket) bool { return countIn(got, agentSet) >= 25 })

	// agentBack waits until agent audio flows toward WhatsApp after mark.
	agentBack := func(t *testing.T, mark int) {
		t.Helper()
		h.meta.waitFor(ctx, "agent audio again", func(got []rxPacket) bool { return countIn(got[mark:], agentSet) >= 25 })
	}

	t.Run("a prompt replaces agent audio toward whatsapp, then agent audio resumes", func(t *testing.T) {
		mark, agMark := len(h.meta.received()), len(ag.received())
		done, err := h.b.Play([]*Prompt{tone}, PlayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !h.b.Playing() {
			t.Fatal("not playing")
		}
		waitClosed(ctx, t, done, "the prompt to finish")
		if h.b.Playing() {
			t.Fatal("still playing after done")
		}
		h.meta.waitFor(ctx, "the last prompt packet", func(got []rxPacket) bool {
			return countIn(got[mark:], map[string]bool{string(tone.pkts[len(tone.pkts)-1]): true}) > 0
		})
		agentBack(t, mark)
		got := h.meta.received()[mark:]
		run := promptRun(t, got, tone, len(tone.pkts))
		if len(run) != len(tone.pkts) {
			t.Fatalf("played %d packets of %d", len(run), len(tone.pkts))
		}
		checkTone(t, "caller hears", payloads(run), 700)
		// paced, not burst: the run lasts the prompt's duration
		if d := run[len(run)-1].at.Sub(run[0].at); d < tone.Duration()*7/10 || d > tone.Duration()*14/10 {
			t.Fatalf("%v of prompt arrived over %v", tone.Duration(), d)
		}
		// after the prompt: at most a few silence frames, then the agent
		var afterRun []rxPacket
		for _, g := range got {
			if g.at.After(run[len(run)-1].at) {
				afterRun = append(afterRun, g)
			}
		}
		silences := 0
		for _, g := range afterRun {
			if agentSet[string(g.payload)] {
				break
			}
			if !isSilence(g.payload) {
				t.Fatalf("after the prompt: neither silence nor agent audio (pt %d)", g.pt)
			}
			silences++
		}
		if silences > 3 {
			t.Fatalf("%d silence frames before agent audio resumed", silences)
		}
		// the agent heard the caller all along
		agGot := ag.received()[agMark:]
		n := 0
		for _, g := range agGot {
			if g.at.After(run[0].at) && g.at.Before(run[len(run)-1].at) {
				n++
			}
		}
		if n < len(run)*7/10 {
			t.Fatalf("agent received %d caller packets during a %d-packet prompt", n, len(run))
		}
		if testutil.ToFloat64(e.metrics.PromptPackets) < float64(len(tone.pkts)) {
			t.Fatal("prompt packets not counted")
		}
	})

	t.Run("loop (a file of 60 ms packets, repacketised) until StopPlayback", func(t *testing.T) {
		mark := len(h.meta.received())
		done, err := h.b.Play([]*Prompt{tone60}, PlayOptions{Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		set := payloadSet(tone60.pkts)
		h.meta.waitFor(ctx, "the prompt twice and more", func(got []rxPacket) bool {
			return countIn(got[mark:], set) >= 2*len(tone60.pkts)+3
		})
		if isClosed(done) {
			t.Fatal("looping playback ended by itself")
		}
		h.b.StopPlayback()
		if !isClosed(done) || h.b.Playing() {
			t.Fatal("StopPlayback did not end the playback")
		}
		agentBack(t, mark)
		run := promptRun(t, h.meta.received()[mark:], tone60, 2*len(tone60.pkts)+3)
		checkTone(t, "caller hears the loop", payloads(run[:len(tone60.pkts)]), 700)
		// paced: the run lasts as long as its audio
		var audio time.Duration
		for i := range run[:len(run)-1] {
			audio += time.Duration(tone60.samples[i%len(tone60.pkts)]) * time.Second / 48000
		}
		if d := run[len(run)-1].at.Sub(run[0].at); d < audio*7/10 || d > audio*14/10 {
			t.Fatalf("%v of prompt arrived over %v", audio, d)
		}
	})

	t.Run("hold: caller hears the music, agent hears nothing; resume restores both", func(t *testing.T) {
		mark := len(h.meta.received())
		if err := h.b.Hold(true, music); err != nil {
			t.Fatal(err)
		}
		heldAt := time.Now()
		sentToAgent := h.b.Stats().Agent.PacketsSent
		rtcpAtAgent := ag.rtcpIn.Load()
		if !h.b.OnHold() || !h.b.Playing() {
			t.Fatal("not on hold or not playing")
		}
		if err := h.b.Hold(true, tone); err != nil || !h.b.OnHold() {
			t.Fatalf("second Hold(true): %v", err)
		}
		set := payloadSet(music.pkts)
		h.meta.waitFor(ctx, "1.5 s of hold music", func(got []rxPacket) bool { return countIn(got[mark:], set) >= 75 })
		run := promptRun(t, h.meta.received()[mark:], music, 75) // the second Hold did not restart or change it
		checkTone(t, "caller hears the hold music", payloads(run), 1500)
		// nothing sent to the agent once Hold returned (one packet may have
		// been past the check), nothing received there 300 ms on
		if n := h.b.Stats().Agent.PacketsSent - sentToAgent; n > 1 {
			t.Fatalf("%d packets sent to the agent on hold", n)
		}
		for _, g := range ag.received() {
			if g.at.After(heldAt.Add(300 * time.Millisecond)) {
				t.Fatalf("agent received a packet %v after hold", g.at.Sub(heldAt))
			}
		}
		waitUntil(ctx, t, h.meta, "caller packets dropped toward the agent", func() bool {
			return h.b.Stats().WhatsApp.PacketsReceived > 0 && testutil.ToFloat64(e.metrics.dropToAgent) >= 25
		})
		if n := h.b.Stats().Agent.PacketsSent - sentToAgent; n > 1 {
			t.Fatalf("%d packets sent to the agent on hold", n)
		}
		waitUntil(ctx, t, ag, "RTCP at the agent on hold", func() bool { return ag.rtcpIn.Load() > rtcpAtAgent })

		// A prompt during hold replaces the music; when it ends the caller
		// hears silence, still not the agent.
		mark2 := len(h.meta.received())
		done, err := h.b.Play([]*Prompt{tone}, PlayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(ctx, t, done, "the prompt during hold")
		h.meta.waitFor(ctx, "silence after the prompt", func(got []rxPacket) bool {
			n := 0
			for _, g := range got[mark2:] {
				if isSilence(g.payload) {
					n++
				}
			}
			return n >= 25
		})
		// from the first music packet on (agent packets forwarded before
		// Hold may still have been in flight)
		onHold := h.meta.received()[mark:]
		for len(onHold) > 0 && string(onHold[0].payload) != string(music.pkts[0]) {
			onHold = onHold[1:]
		}
		if n := countIn(onHold, agentSet); n != 0 || len(onHold) < 75 {
			t.Fatalf("caller heard %d agent packets on hold (of %d)", n, len(onHold))
		}

		mark, agMark := len(h.meta.received()), len(ag.received())
		if err := h.b.Hold(false, nil); err != nil {
			t.Fatal(err)
		}
		if h.b.OnHold() {
			t.Fatal("still on hold")
		}
		if err := h.b.Hold(false, nil); err != nil {
			t.Fatalf("second Hold(false): %v", err)
		}
		agentBack(t, mark)
		ag.waitFor(ctx, "caller audio at the agent again", func(got []rxPacket) bool { return len(got)-agMark >= 25 })
		checkTone(t, "agent hears the caller again", payloads(ag.received()[agMark:]), 440)
	})

	t.Run("Hold(true, nil) plays the built-in hold music", func(t *testing.T) {
		hold, err := BuiltinPrompt("hold")
		if err != nil {
			t.Fatal(err)
		}
		mark := len(h.meta.received())
		if err := h.b.Hold(true, nil); err != nil {
			t.Fatal(err)
		}
		h.meta.waitFor(ctx, "built-in hold music", func(got []rxPacket) bool { return countIn(got[mark:], payloadSet(hold.pkts)) >= 20 })
		if err := h.b.Hold(false, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("closing the bridge ends the playback", func(t *testing.T) {
		done, err := h.b.Play([]*Prompt{tone, tone60}, PlayOptions{Loop: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.b.Close(); err != nil {
			t.Fatal(err)
		}
		if !isClosed(done) {
			t.Fatal("playback channel open after Close")
		}
		if _, err := h.b.Play([]*Prompt{tone}, PlayOptions{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Play after Close: %v", err)
		}
		if err := h.b.Hold(true, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Hold after Close: %v", err)
		}
	})
}

// TestPlayReplaces: a Play replaces the playback in progress (its channel
// closes at once) and the new prompt starts from its first packet.
func TestPlayReplaces(t *testing.T) {
	t.Parallel() // mostly waiting on real time: overlap with each other, after the sequential tests
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newHarness(t, newTestEngine(t, nil))
	h.connectWhatsApp(ctx)
	tone, music := loadPrompt(t, "tone-700.opus"), loadPrompt(t, "tone-1500.opus")
	first, err := h.b.Play([]*Prompt{music}, PlayOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	h.meta.waitFor(ctx, "music", func(got []rxPacket) bool { return countIn(got, payloadSet(music.pkts)) >= 10 })
	mark := len(h.meta.received())
	second, err := h.b.Play([]*Prompt{tone, tone}, PlayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !isClosed(first) {
		t.Fatal("replaced playback's channel still open")
	}
	waitClosed(ctx, t, second, "the sequence")
	h.meta.waitFor(ctx, "the whole sequence", func(got []rxPacket) bool { return countIn(got[mark:], payloadSet(tone.pkts)) >= 2*len(tone.pkts) })
	run := promptRun(t, h.meta.received()[mark:], tone, 2*len(tone.pkts))
	if len(run) != 2*len(tone.pkts) {
		t.Fatalf("sequence of two: %d packets, want %d", len(run), 2*len(tone.pkts))
	}
}
