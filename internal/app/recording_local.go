package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/signaling"
)

// recBridge is what local recording needs of a call's bridge (media.Bridge:
// the prompt player and the recording tap).
type recBridge interface {
	Play(ps []*media.Prompt, o media.PlayOptions) (<-chan struct{}, error)
	StopPlayback()
	StartRecording(user, business media.PacketSink) error
	StopRecording() error
}

// localRecorder records calls itself: the consent prompt, then both
// directions' Opus packets into two Ogg files (recording.CallRecorder)
// through the bridge's tap, stored and indexed when the call ends.
type localRecorder struct {
	r                *Recordings
	notice, explicit *media.Prompt
	results          *prometheus.CounterVec
	// changed tells call control a call's state (state) changed on its own:
	// consent asked, recording on, refused (signaling.Controller.RecordingChanged).
	changed func(call.ID)

	mu    sync.Mutex
	calls map[call.ID]*localCall
}

// Local recording results (callgw_recording_local_total{result}).
const (
	localStarted = "started"  // consent obtained, the tap is on
	localRefused = "refused"  // explicit consent: no key in time
	localStopped = "stopped"  // stopped during the call (agent or supervisor)
	localStored  = "stored"   // both files stored and indexed
	localFailed  = "failed"   // the tap or the store failed
	localNoMedia = "no_media" // the bridge cannot play or tap (nothing recorded)
)

// localCall is one call's consent and recording.
type localCall struct {
	id      call.ID
	number  string
	policy  config.Recording
	consent config.Consent
	b       recBridge
	key     chan struct{} // closed when the caller presses 1 (explicit consent)
	keyOnce sync.Once

	mu       sync.Mutex
	obtained string // call.Record.RecordingConsent so far
	asking   bool   // the consent flow runs
	ended    bool
	stopped  bool // stopped by an agent or supervisor: the flow starts nothing
	rec      *recording.CallRecorder
	started  time.Time
	done     chan struct{} // closed at ending: the consent flow gives up
}

func (l *localRecorder) init(r *Recordings, reg prometheus.Registerer) error {
	l.r = r
	l.calls = map[call.ID]*localCall{}
	l.results = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "recording_local_total",
		Help: "Calls recorded by callgw itself, by result: started, refused (explicit consent not given), stopped, stored, failed, no_media."},
		[]string{"result"})
	if reg != nil {
		reg.MustRegister(l.results)
	}
	var err error
	if l.notice, err = media.BuiltinPrompt("consent_notice"); err != nil {
		return fmt.Errorf("consent prompt: %w", err)
	}
	if l.explicit, err = media.BuiltinPrompt("consent_explicit"); err != nil {
		return fmt.Errorf("consent prompt: %w", err)
	}
	return nil
}

// answered starts the consent flow of a call whose number records locally.
func (l *localRecorder) answered(rec call.Record, b signaling.Bridge) {
	p := l.r.Policy(rec.PhoneNumberID)
	if !p.Mode.Local() {
		return
	}
	lc := &localCall{id: rec.ID, number: rec.PhoneNumberID, policy: p, key: make(chan struct{}), done: make(chan struct{}),
		consent: p.ConsentFor(phone.RegionOf(rec.UserPhone)), obtained: ConsentNone, asking: true}
	rb, ok := b.(recBridge)
	if !ok {
		l.results.WithLabelValues(localNoMedia).Inc()
		l.r.log.Error("local recording: the call's bridge cannot play prompts or tap media", "call", rec.ID)
		return
	}
	lc.b = rb
	l.mu.Lock()
	l.calls[rec.ID] = lc
	l.mu.Unlock()
	l.r.pending.Add(1)
	go func() {
		defer l.r.pending.Done()
		l.notify(lc.id) // consent asked
		l.consentFlow(lc)
		lc.mu.Lock()
		lc.asking = false
		lc.mu.Unlock()
		l.notify(lc.id) // on, refused, or nothing
	}()
}

// notify tells call control the state of call id changed.
func (l *localRecorder) notify(id call.ID) {
	if l.changed != nil {
		l.changed(id)
	}
}

// state is the call's local recording as its agent sees it, and whether
// the agent may stop it.
func (l *localRecorder) state(id call.ID) (signaling.RecordingState, bool) {
	l.mu.Lock()
	lc := l.calls[id]
	l.mu.Unlock()
	if lc == nil {
		return signaling.RecordingNone, false
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	switch {
	case lc.rec != nil:
		return signaling.RecordingOn, lc.policy.AgentMayStop
	case lc.stopped:
		return signaling.RecordingStopped, lc.policy.AgentMayStop
	case lc.obtained == ConsentExplicitRefused:
		return signaling.RecordingRefused, lc.policy.AgentMayStop
	case lc.asking:
		return signaling.RecordingConsent, lc.policy.AgentMayStop
	}
	return signaling.RecordingNone, false // the prompt or the tap failed
}

// consentFlow plays the prompt, waits for the caller's key when consent
// must be explicit, then starts the tap.
func (l *localRecorder) consentFlow(lc *localCall) {
	prompt := l.notice
	if lc.consent == config.ConsentExplicit {
		prompt = l.explicit
	}
	played, err := lc.b.Play([]*media.Prompt{prompt}, media.PlayOptions{})
	if err != nil {
		l.r.log.Warn("local recording: consent prompt not played: nothing recorded", "call", lc.id, "err", err)
		l.results.WithLabelValues(localFailed).Inc()
		return
	}
	if lc.consent == config.ConsentExplicit {
		select {
		case <-lc.done:
			return
		case <-lc.key: // pressed during the prompt
			lc.b.StopPlayback()
		case <-played:
			wait := make(chan struct{})
			t := l.r.clk.AfterFunc(time.Duration(lc.policy.ConsentTimeoutSeconds)*time.Second, func() { close(wait) })
			select {
			case <-lc.done:
				t.Stop()
				return
			case <-lc.key:
				t.Stop()
			case <-wait:
				lc.mu.Lock()
				if !lc.ended {
					lc.obtained = ConsentExplicitRefused
				}
				lc.mu.Unlock()
				l.results.WithLabelValues(localRefused).Inc()
				l.r.log.Info("local recording: the caller did not agree: not recorded", "call", lc.id)
				return
			}
		}
		l.start(lc, ConsentExplicitGiven)
		return
	}
	select {
	case <-lc.done:
		return
	case <-played:
	}
	l.start(lc, ConsentNotice)
}

// start turns the tap on once consent is obtained.
func (l *localRecorder) start(lc *localCall, consent string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.ended {
		return
	}
	lc.obtained = consent
	if lc.stopped {
		return
	}
	now := l.r.clk.Now()
	cr, err := l.r.archive.StartCall(lc.number, string(lc.id), now, lc.policy.RetentionDays)
	if err != nil {
		l.results.WithLabelValues(localFailed).Inc()
		l.r.log.Error("local recording: cannot open the files", "call", lc.id, "err", err)
		return
	}
	if err := lc.b.StartRecording(cr.User, cr.Business); err != nil {
		cr.Abort()
		l.results.WithLabelValues(localFailed).Inc()
		l.r.log.Error("local recording: tap refused", "call", lc.id, "err", err)
		return
	}
	lc.rec, lc.started = cr, now
	l.results.WithLabelValues(localStarted).Inc()
	l.r.log.Info("local recording started", "call", lc.id, "consent", consent)
}

// dtmf: the caller's 1 is consent.
func (l *localRecorder) dtmf(id call.ID, d rune) {
	if d != '1' {
		return
	}
	l.mu.Lock()
	lc := l.calls[id]
	l.mu.Unlock()
	if lc != nil && lc.consent == config.ConsentExplicit {
		lc.keyOnce.Do(func() { close(lc.key) })
	}
}

// stopTap stops the tap and stores what was recorded, in the background.
// lc.mu is held.
func (l *localRecorder) stopTap(lc *localCall, result string) {
	if lc.rec == nil {
		return
	}
	cr, started := lc.rec, lc.started
	lc.rec = nil
	if err := lc.b.StopRecording(); err != nil {
		l.r.log.Warn("local recording: stop tap", "call", lc.id, "err", err)
	}
	dur := l.r.clk.Now().Sub(started)
	if result != "" {
		l.results.WithLabelValues(result).Inc()
	}
	l.r.pending.Add(1)
	go func() {
		defer l.r.pending.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		es, err := cr.Finish(ctx, dur)
		if err != nil {
			l.results.WithLabelValues(localFailed).Inc()
			l.r.log.Error("local recording: not stored", "call", lc.id, "err", err)
			return
		}
		l.results.WithLabelValues(localStored).Inc()
		l.r.log.Info("local recording stored", "call", lc.id, "files", len(es), "duration", dur.Round(time.Millisecond).String())
	}()
}

// ending stops the call's recording (the bridge closes next) and returns
// the consent obtained ("" when the number does not record locally).
func (l *localRecorder) ending(rec call.Record) string {
	l.mu.Lock()
	lc := l.calls[rec.ID]
	delete(l.calls, rec.ID)
	l.mu.Unlock()
	if lc == nil {
		if l.r.Policy(rec.PhoneNumberID).Mode.Local() {
			return ConsentNone // ended before media flowed
		}
		return ""
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.ended = true
	close(lc.done)
	l.stopTap(lc, "")
	return lc.obtained
}

// stop stops a live call's recording for agent ("" = supervisor or admin).
func (l *localRecorder) stop(id call.ID, agent string) error {
	l.mu.Lock()
	lc := l.calls[id]
	l.mu.Unlock()
	if lc == nil {
		return signaling.ErrRecordingRefused
	}
	if agent != "" && !lc.policy.AgentMayStop {
		return fmt.Errorf("%w: the number's policy does not let agents stop recordings", signaling.ErrRecordingRefused)
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.stopped || (lc.rec == nil && lc.obtained != ConsentNone) {
		return fmt.Errorf("%w: nothing is being recorded", signaling.ErrRecordingRefused)
	}
	lc.stopped = true
	if lc.rec == nil {
		l.results.WithLabelValues(localStopped).Inc() // still asking consent: it will not start
		return nil
	}
	l.stopTap(lc, localStopped)
	l.r.log.Info("local recording stopped during the call", "call", id, "by", agent)
	return nil
}
