package signaling

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/signaling/ivr"
	lc "github.com/callgw/callgw/signaling/lifecycle"
)

// IVR menus: a number with numbers[].ivr makes callgw answer the call at
// once (StateWaiting); the caller goes through the menus (signaling/ivr
// decides, this file plays prompts, reads keys and starts timers) before a
// team's queue. The path is kept in the record (ivr_path).

// timerIVR is the IVR's timer in liveCall.timers (stopped with the call).
const timerIVR lc.TimerKind = 33

// ivrCall is a liveCall's IVR state.
type ivrCall struct {
	tree *config.IVR
	st   ivr.State
	on   atomic.Bool // keys go to the IVR (read by media goroutines)
}

// ivrFirst (planInbound): a number with an IVR is answered by callgw at
// once: the caller waits in the IVR first.
func (l *liveCall) ivrFirst(n config.Number, p *lc.Prepared) bool {
	if n.IVR == nil {
		return false
	}
	l.ivr.tree = n.IVR
	p.Wait, p.CanWait = true, true
	return true
}

// ivrBegin (beginWait) starts the IVR instead of the queue; false when
// the number has none or it already ran.
func (l *liveCall) ivrBegin() bool {
	if l.ivr.tree == nil || l.ivr.st.Node != "" {
		return false
	}
	l.ivr.on.Store(true)
	l.ivrStep(ivr.Start{})
	return true
}

// ivrDigit (media's OnDTMF) hands a key to the IVR; false when none runs.
func (l *liveCall) ivrDigit(d rune) bool {
	if !l.ivr.on.Load() {
		return false
	}
	l.post(func(l *liveCall) { l.ivrStep(ivr.Digit{Key: d}) })
	return true
}

// ivrStep applies one event (in the actor) and runs the actions.
func (l *liveCall) ivrStep(ev ivr.Event) {
	if l.ivr.tree == nil || l.lc.State != lc.StateWaiting || l.lc.Agent != "" {
		l.ivr.on.Store(false)
		return
	}
	next, acts, err := ivr.Step(l.ivr.tree, l.ivr.st, ev)
	if err != nil {
		l.log.Warn("ivr", "err", err)
		return
	}
	l.ivr.st = next
	if next.Done() {
		l.ivr.on.Store(false)
	}
	for _, a := range acts {
		l.ivrAct(a)
	}
}

func (l *liveCall) ivrAct(a ivr.Action) {
	c := l.c
	switch a := a.(type) {
	case ivr.Visit:
		c.m.ivrNodes.WithLabelValues(a.Node, a.Kind.String()).Inc()
		_ = l.step(lc.IVRVisited{When: l.when(), Node: a.Node})
	case ivr.Play:
		l.ivrPlay(a.Prompts, func(l *liveCall) { l.ivrStep(ivr.PromptDone{Seq: a.Seq}) })
	case ivr.StopPlay:
		if l.bridge != nil {
			l.bridge.StopPlayback()
		}
	case ivr.Wait:
		if t := l.timers[timerIVR]; t != nil {
			t.Stop()
		}
		seq := a.Seq
		l.timers[timerIVR] = c.clock.AfterFunc(a.After, func() {
			l.post(func(l *liveCall) { l.ivrStep(ivr.Timeout{Seq: seq}) })
		})
	case ivr.Route:
		l.ivrRoute(a.Team)
	case ivr.Callback:
		l.missed() // the callback task of the number's first team
	case ivr.Hangup:
		end := func(l *liveCall) { _ = l.step(lc.LeaveWait{When: l.when(), Cause: lc.CauseIVRHangup}) }
		if len(a.Prompts) == 0 || !l.ivrPlay(a.Prompts, end) {
			end(l)
		}
	}
}

// ivrPlay plays prompts once; then runs in the actor when they end. False
// when nothing could be played.
func (l *liveCall) ivrPlay(names []string, then func(*liveCall)) bool {
	if l.bridge == nil {
		return false
	}
	ps := make([]*media.Prompt, 0, len(names))
	for _, n := range names {
		p, err := l.c.ivrPrompt(n)
		if err != nil {
			l.log.Warn("ivr prompt", "prompt", n, "err", err)
			continue
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return false
	}
	done, err := l.bridge.Play(ps, media.PlayOptions{})
	if err != nil {
		l.log.Warn("ivr: play", "err", err)
		return false
	}
	go func() { // ends with the playback (finished, replaced, stopped or the bridge closed)
		<-done
		l.post(then)
	}()
	return true
}

// ivrPrompt loads a prompt reference (cached).
func (c *Controller) ivrPrompt(ref string) (*media.Prompt, error) {
	if name, ok := config.IsBuiltin(ref); ok {
		return media.BuiltinPrompt(name)
	}
	return c.prompts.file(ref)
}

// ivrRoute queues the caller in team (the IVR's choice), with the hold audio.
func (l *liveCall) ivrRoute(team config.TeamID) {
	c := l.c
	if t := l.timers[timerIVR]; t != nil {
		t.Stop()
		delete(l.timers, timerIVR)
	}
	l.playHold()
	if c.router == nil {
		_ = l.step(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
		return
	}
	l.route.since = l.lc.Rec.CreatedAt
	if !l.enqueue(team, l.route.since) {
		_ = l.step(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
		return
	}
	l.log.Info("ivr: caller waits", "team", string(team), "path", fmt.Sprint(l.ivr.st.Path))
	c.kickQueues()
}

func (m *metrics) ivrMetrics() {
	m.ivrNodes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "ivr_node_visits_total",
		Help: "Callers entering an IVR node, by node id and kind (play, menu, team, callback, hangup)."}, []string{"node", "kind"})
}
