package media

import (
	"fmt"
	"time"
)

const (
	// playSlack: a prompt packet due within this much after the pacer tick
	// goes in this tick (the ticks' own jitter must not shift packets into
	// pairs).
	playSlack = frameDuration / 2
	// playCatchUp: the most prompt audio one tick sends to catch up after a
	// late tick (keeps the RTP timestamps in step with wall time without
	// bursts).
	playCatchUp = 3 * opusFrameTicks
	// playMaxLag: further behind than this (a stalled pacer), the schedule
	// restarts at the tick instead of catching up.
	playMaxLag = 3 * frameDuration
)

// PlayOptions tune Bridge.Play.
type PlayOptions struct {
	// Loop plays the whole sequence again and again until stopped.
	Loop bool
}

// playback is one Play in progress, driven by the pacer under outState.mu.
type playback struct {
	ps   []*Prompt
	loop bool
	hold bool // started by Hold: Hold(false) ends it
	i, j int  // current prompt, packet
	// due is when the next packet must leave (unix nanos); 0: at the next
	// tick (start, or after a DTMF event paused the playback).
	due   int64
	first bool // the next packet is the playback's first (marker bit)
	done  chan struct{}
}

// startPlayLocked replaces any playback with a new one and returns its
// done channel.
func (o *outState) startPlayLocked(ps []*Prompt, loop, hold bool) chan struct{} {
	o.endPlayLocked()
	pb := &playback{ps: ps, loop: loop, hold: hold, first: true, done: make(chan struct{})}
	o.play = pb
	return pb.done
}

// endPlayLocked ends the playback in progress, if any.
func (o *outState) endPlayLocked() {
	if o.play == nil {
		return
	}
	close(o.play.done)
	o.play = nil
	o.haveSrc = false // agent audio re-anchors after the prompt
}

// playLocked is the pacer's step while a playback runs: every packet due
// by now (a 20 ms packet per tick; a 60 ms SILK packet every third tick; a
// shorter tail packet early), each on our SSRC with seq +1 and the
// timestamp advanced by the previous packet's samples.
func (o *outState) playLocked(now time.Time, bd *binding, m *Metrics) {
	pb := o.play
	t := now.UnixNano()
	if pb.due == 0 || t-pb.due > int64(playMaxLag) {
		pb.due = t
	}
	for sent := 0; sent < playCatchUp && pb.due <= t+int64(playSlack); {
		p := pb.ps[pb.i]
		n := uint32(p.samples[pb.j])
		ts := o.ts + opusFrameTicks // o.ts+960: the next packet's timestamp (see outState)
		o.seq++
		if o.writeLocked(now, bd, bd.ptOpus, pb.first, o.seq, ts, p.pkts[pb.j]) {
			m.promptPackets.Inc()
		}
		pb.first = false
		o.ts = ts + n - opusFrameTicks
		pb.due += int64(n) * int64(time.Second) / 48000
		sent += int(n)
		if pb.j++; pb.j < len(p.pkts) {
			continue
		}
		pb.j = 0
		if pb.i++; pb.i < len(pb.ps) {
			continue
		}
		pb.i = 0
		if !pb.loop {
			o.endPlayLocked()
			return
		}
	}
	o.haveSrc = false
}

// Play plays the prompts in order (looping the whole sequence if o.Loop)
// into the WhatsApp leg, replacing any playback in progress. While a
// playback runs, the agent's audio is not forwarded toward WhatsApp (the
// caller hears only the prompt); the agent still hears the caller unless
// the call is on hold. Works before any agent leg exists; requires
// StartWhatsAppMedia (else ErrMediaNotStarted). The packets go out from the
// pacer on our one SSRC, sequence numbers +1 and timestamps advancing by
// each packet's samples, continuous with agent audio, silence and DTMF (a
// DTMF event pauses the prompt). The returned channel is closed when the
// playback ends: finished, stopped, replaced, or the bridge closed.
func (b *Bridge) Play(ps []*Prompt, o PlayOptions) (<-chan struct{}, error) {
	if len(ps) == 0 {
		return nil, ErrNoPrompt
	}
	for i, p := range ps {
		if p == nil || len(p.pkts) == 0 {
			return nil, fmt.Errorf("%w: prompt %d is nil or empty", ErrNoPrompt, i)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if !b.waStarted.Load() {
		return nil, ErrMediaNotStarted
	}
	ps = append([]*Prompt(nil), ps...)
	b.out.mu.Lock()
	defer b.out.mu.Unlock()
	b.e.metrics.playbacks.Inc()
	return b.out.startPlayLocked(ps, o.Loop, false), nil
}

// StopPlayback ends the playback in progress (its channel is closed); the
// agent's audio is forwarded again from its next packet. No-op when nothing
// plays.
func (b *Bridge) StopPlayback() {
	b.out.mu.Lock()
	b.out.endPlayLocked()
	b.out.mu.Unlock()
}

// Playing reports whether a playback is in progress.
func (b *Bridge) Playing() bool {
	b.out.mu.Lock()
	defer b.out.mu.Unlock()
	return b.out.play != nil
}

// Hold puts the call on hold (on) or takes it off (off). On hold the caller
// hears music looped (music; nil: the built-in "hold") and nothing else —
// the agent's audio is not forwarded toward WhatsApp even if another
// playback replaces the music and ends — and the agent leg receives no RTP
// (its RTCP keeps flowing). Off ends the hold music (not a playback that
// replaced it) and forwards both ways again at once. Idempotent: Hold(true)
// while on hold changes nothing. Requires StartWhatsAppMedia.
func (b *Bridge) Hold(on bool, music *Prompt) error {
	if on && music == nil {
		var err error
		if music, err = BuiltinPrompt("hold"); err != nil {
			return err
		}
	}
	if on && len(music.pkts) == 0 {
		return fmt.Errorf("%w: hold music is empty", ErrNoPrompt)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	o := &b.out
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case on == o.held.Load():
		return nil
	case on:
		if !b.waStarted.Load() {
			return ErrMediaNotStarted
		}
		o.held.Store(true)
		o.startPlayLocked([]*Prompt{music}, true, true)
		b.e.metrics.holds.Inc()
	default:
		o.held.Store(false)
		if o.play != nil && o.play.hold {
			o.endPlayLocked()
		}
		o.haveSrc = false
	}
	b.log.Debug("hold", "on", on)
	return nil
}

// OnHold reports whether the call is on hold.
func (b *Bridge) OnHold() bool { return b.out.held.Load() }
