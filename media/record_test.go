package media

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/recording/opusfile"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fileSink is an opusfile.Writer on a file.
type fileSink struct {
	f *os.File
	*opusfile.Writer
}

func newFileSink(t *testing.T, name string) *fileSink {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	w, err := opusfile.NewWriter(f, opusfile.Config{Serial: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &fileSink{f: f, Writer: w}
}

// decode closes the file and decodes it with libopus.
func (s *fileSink) decode(t *testing.T) []int16 {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := oggopus.ReadPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

func pcmDuration(pcm []int16) time.Duration {
	return time.Duration(len(pcm)) * time.Second / audiotest.SampleRate
}

// toneSpan is how long, in 100 ms windows of pcm, freq dominates.
func toneSpan(pcm []int16, freq float64) time.Duration {
	const win = audiotest.SampleRate / 10
	var d time.Duration
	for i := 0; i+win <= len(pcm); i += win {
		if ok, _ := audiotest.HasTone(pcm[i:i+win], freq, 15); ok {
			d += 100 * time.Millisecond
		}
	}
	return d
}

func TestRecording(t *testing.T) {
	t.Parallel() // mostly waiting on real time: overlap with each other, after the sequential tests
	for _, path := range []PacketPath{PathPion, PathFast} {
		t.Run(path.String(), func(t *testing.T) {
			t.Parallel()
			testRecording(t, path)
		})
	}
}

// Both directions recorded into Ogg Opus files while the agent talks, a
// prompt plays and the agent talks again: the user file decodes to the
// caller's 440 Hz, the business file to the agent's 1000 Hz and the
// prompt's 700 Hz, each as long as the audio sent during the recording
// (±100 ms).
func testRecording(t *testing.T, path PacketPath) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newTestEngine(t, func(c *Config) { c.PacketPath = path })
	h := newHarness(t, e)
	h.connectWhatsApp(ctx)
	agentAudio := loadOpus(t, "agent-1000.ogg")
	agentSet := payloadSet(agentAudio)
	ag := h.connectAgent(ctx)
	ag.play(agentAudio, nil, nil)
	h.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	h.meta.waitFor(ctx, "agent audio", func(got []rxPacket) bool { return countIn(got, agentSet) >= 10 })
	ag.waitFor(ctx, "caller audio", func(got []rxPacket) bool { return len(got) >= 10 })

	user, biz := newFileSink(t, "user.opus"), newFileSink(t, "business.opus")
	if err := h.b.StartRecording(user, biz); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.b.StartRecording(user, biz); !errors.Is(err, ErrRecording) {
		t.Fatalf("second StartRecording: %v", err)
	}
	if !h.b.Recording() {
		t.Fatal("not recording")
	}
	mark := len(h.meta.received())
	h.meta.waitFor(ctx, "1.5 s of agent audio", func(got []rxPacket) bool { return countIn(got[mark:], agentSet) >= 75 })
	tone := loadPrompt(t, "tone-700.opus")
	done, err := h.b.Play([]*Prompt{tone}, PlayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(ctx, t, done, "prompt")
	mark = len(h.meta.received())
	h.meta.waitFor(ctx, "1 s of agent audio", func(got []rxPacket) bool { return countIn(got[mark:], agentSet) >= 50 })
	stop := time.Now()
	if err := h.b.StopRecording(); err != nil {
		t.Fatal(err)
	}
	wall := stop.Sub(start)
	if err := h.b.StopRecording(); err != nil {
		t.Fatalf("second StopRecording: %v", err)
	}
	ustats, bstats := user.Stats(), biz.Stats()

	upcm, bpcm := user.decode(t), biz.decode(t)
	t.Logf("recorded %v: user %v (%d packets, %d silence filled), business %v (%d packets, %d silence filled)",
		wall.Round(time.Millisecond), pcmDuration(upcm), ustats.Packets, ustats.SilencePackets,
		pcmDuration(bpcm), bstats.Packets, bstats.SilencePackets)
	// The audio of the recording's time: what the caller sent us (its
	// packets' count: the test peer's 20 ms ticker drops ticks when the box
	// is busy) and what the WhatsApp peer received from us (each packet's
	// samples). Equal to the wall time on an idle box.
	h.meta.sendMu.Lock()
	var userAudio time.Duration
	for _, sp := range h.meta.sentLog {
		if !sp.at.Before(start) && sp.at.Before(stop) {
			userAudio += 20 * time.Millisecond
		}
	}
	h.meta.sendMu.Unlock()
	var bizAudio time.Duration
	for _, g := range h.meta.received() {
		if g.pt == 111 && !g.at.Before(start) && g.at.Before(stop) {
			n, _ := opusPacketSamples(g.payload)
			bizAudio += time.Duration(n) * time.Second / 48000
		}
	}
	t.Logf("audio sent in the recording's %v: user %v, business %v", wall.Round(time.Millisecond), userAudio, bizAudio)
	for _, c := range []struct {
		name string
		pcm  []int16
		want time.Duration
	}{{"user", upcm, userAudio}, {"business", bpcm, bizAudio}} {
		if d := pcmDuration(c.pcm) - c.want; d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Errorf("%s file lasts %v, %v of audio was sent while recording", c.name, pcmDuration(c.pcm), c.want)
		}
	}
	// Nothing lost by the tap: no timestamp gap for the writer to fill
	// (allowing a packet lost on loopback).
	if ustats.SilencePackets > 2 || bstats.SilencePackets > 2 {
		t.Errorf("gaps filled with silence: user %d, business %d", ustats.SilencePackets, bstats.SilencePackets)
	}
	if ok, f := audiotest.HasTone(upcm, 440, 15); !ok {
		t.Errorf("user file: %v Hz, want the caller's 440", f)
	}
	if s := toneSpan(upcm, 440); s < pcmDuration(upcm)-300*time.Millisecond {
		t.Errorf("user file: 440 Hz during %v of %v", s, pcmDuration(upcm))
	}
	if ok, f := audiotest.HasTone(bpcm[:audiotest.SampleRate], 1000, 15); !ok {
		t.Errorf("business file, first second: %v Hz, want the agent's 1000", f)
	}
	if s := toneSpan(bpcm, 700); s < 800*time.Millisecond || s > 1200*time.Millisecond {
		t.Errorf("business file: the 1 s prompt (700 Hz) during %v", s)
	}
	if s := toneSpan(bpcm, 1000); s < 2*time.Second {
		t.Errorf("business file: agent audio (1000 Hz) during only %v", s)
	}
	if n := testutil.ToFloat64(e.metrics.RecordDropped.WithLabelValues("user")) +
		testutil.ToFloat64(e.metrics.RecordDropped.WithLabelValues("business")); n != 0 {
		t.Errorf("%v packets dropped by the tap", n)
	}
}

// blockingSink blocks its first write until released, then counts.
type blockingSink struct {
	release chan struct{}
	calls   atomic.Int64
	err     error
	once    sync.Once
	entered chan struct{}
}

func (s *blockingSink) WritePacket(pkt []byte, ts uint32) error {
	s.once.Do(func() { close(s.entered); <-s.release })
	s.calls.Add(1)
	return s.err
}

// A sink that stalls never blocks forwarding: packets are dropped and
// counted; a failing sink is not called again and its error comes back
// from StopRecording; after StopRecording no sink is called.
func TestRecordingSlowAndFailingSink(t *testing.T) {
	t.Parallel() // mostly waiting on real time: overlap with each other, after the sequential tests
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newTestEngine(t, nil)
	h := newHarness(t, e)
	h.connectWhatsApp(ctx)
	agentAudio := loadOpus(t, "agent-1000.ogg")
	agentSet := payloadSet(agentAudio)
	ag := h.connectAgent(ctx)
	ag.play(agentAudio, nil, nil)
	h.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)

	if err := h.b.StartRecording(nil, nil); !errors.Is(err, ErrRecording) {
		t.Fatalf("nil sinks: %v", err)
	}
	sinkErr := errors.New("disk full")
	slow := &blockingSink{release: make(chan struct{}), entered: make(chan struct{})}
	failing := &blockingSink{release: make(chan struct{}), entered: make(chan struct{}), err: sinkErr}
	close(failing.release)
	if err := h.b.StartRecording(slow, failing); err != nil {
		t.Fatal(err)
	}
	waitClosed(ctx, t, slow.entered, "the first write")
	dropped := e.metrics.RecordDropped.WithLabelValues("user")
	mark := len(h.meta.received())
	// 3.5 s of forwarding while the user sink is stuck: more than the ring.
	h.meta.waitFor(ctx, "agent audio while the sink is stuck", func(got []rxPacket) bool {
		return countIn(got[mark:], agentSet) >= 175
	})
	ag.waitFor(ctx, "caller audio while the sink is stuck", func(got []rxPacket) bool { return len(got) >= 175 })
	if n := testutil.ToFloat64(dropped); n < 20 {
		t.Fatalf("user packets dropped = %v with a stuck sink", n)
	}
	close(slow.release)
	err := h.b.StopRecording()
	if !errors.Is(err, sinkErr) {
		t.Fatalf("StopRecording: %v, want the sink's error", err)
	}
	if n := failing.calls.Load(); n != 1 {
		t.Fatalf("failing sink called %d times, want once", n)
	}
	calls := slow.calls.Load()
	if calls < 100 || calls > recSlots+60 {
		t.Fatalf("slow sink got %d packets: want the ring's (%d) plus what came after the drain", calls, recSlots)
	}
	mark = len(h.meta.received())
	h.meta.waitFor(ctx, "more audio", func(got []rxPacket) bool { return countIn(got[mark:], agentSet) >= 25 })
	if n := slow.calls.Load(); n != calls {
		t.Fatalf("sink called %d times after StopRecording returned", n-calls)
	}
	// recording again after stop; Close stops it
	user, biz := newFileSink(t, "u.opus"), newFileSink(t, "b.opus")
	if err := h.b.StartRecording(user, biz); err != nil {
		t.Fatal(err)
	}
	if err := h.b.Close(); err != nil {
		t.Fatal(err)
	}
	if h.b.Recording() {
		t.Fatal("recording after Close")
	}
	if err := h.b.StartRecording(user, biz); !errors.Is(err, ErrClosed) {
		t.Fatalf("StartRecording after Close: %v", err)
	}
}
