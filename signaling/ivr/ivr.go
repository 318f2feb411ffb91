// Package ivr runs one caller through a number's IVR menus (config.IVR),
// purely: the caller's state plus an event (started, prompt done, a key,
// a timeout) gives the next state and the actions to take (play prompts,
// start a timer, route to a team, leave a callback task, hang up). The
// signaling runner executes the actions and feeds the events back; stale
// events (a prompt or timer replaced since) are recognised by their
// sequence number and ignored.
package ivr

import (
	"fmt"
	"time"

	"github.com/callgw/callgw/config"
)

// MaxPath bounds the recorded path (a caller looping in menus).
const MaxPath = 32

// Event is something that happened to the caller.
type Event interface{ ivrEvent() }

type (
	// Start enters the IVR's start node.
	Start struct{}
	// PromptDone: the playback started by the action with Seq ended.
	PromptDone struct{ Seq int }
	// Digit: the caller pressed a key (RFC 4733).
	Digit struct{ Key rune }
	// Timeout: the timer started by the action with Seq fired.
	Timeout struct{ Seq int }
)

func (Start) ivrEvent()      {}
func (PromptDone) ivrEvent() {}
func (Digit) ivrEvent()      {}
func (Timeout) ivrEvent()    {}

// Action is something the runner must do.
type Action interface{ ivrAction() }

type (
	// Play plays the prompts in order (replacing any playback); report
	// PromptDone{Seq} when it ends.
	Play struct {
		Prompts []string // "builtin:<name>" or file paths
		Seq     int
	}
	// StopPlay stops the playback (a key interrupted a menu prompt).
	StopPlay struct{}
	// Wait starts a timer; report Timeout{Seq} when it fires.
	Wait struct {
		After time.Duration
		Seq   int
	}
	// Visit: the caller entered Node (ivr_path, metrics by node).
	Visit struct {
		Node string
		Kind config.IVRKind
	}
	// Route hands the caller to Team's queue: the IVR is over.
	Route struct{ Team config.TeamID }
	// Callback leaves a callback task; Hangup follows.
	Callback struct{}
	// Hangup ends the call after the prompts (if any) have played: the IVR
	// is over.
	Hangup struct{ Prompts []string }
)

func (Play) ivrAction()     {}
func (StopPlay) ivrAction() {}
func (Wait) ivrAction()     {}
func (Visit) ivrAction()    {}
func (Route) ivrAction()    {}
func (Callback) ivrAction() {}
func (Hangup) ivrAction()   {}

// phase is where the caller is within a node.
type phase uint8

const (
	phaseNone    phase = iota
	phasePrompt        // a play or menu prompt plays
	phaseInvalid       // a menu's "invalid" prompt plays (then the menu again)
	phaseWaitKey       // a menu waits for a key
	phaseDone          // routed, or hanging up
)

// State is one caller's place in the IVR. The zero value has not started.
type State struct {
	Node    string
	Tries   int // wrong keys or timeouts in the current menu
	Seq     int // of the current playback or timer
	Path    []string
	phase   phase
	pending []Action
}

// Done reports whether the IVR is over (routed or hanging up).
func (s State) Done() bool { return s.phase == phaseDone }

// Step applies ev and returns the next state and the actions, in order.
// It is pure: s is not modified.
func Step(iv *config.IVR, s State, ev Event) (State, []Action, error) {
	if iv == nil {
		return s, nil, fmt.Errorf("ivr: no menus")
	}
	st := s
	st.Path = append([]string(nil), s.Path...)
	r := &run{iv: iv, s: &st}
	switch e := ev.(type) {
	case Start:
		if s.phase != phaseNone || s.Node != "" {
			return s, nil, nil
		}
		r.enter(iv.Start)
	case PromptDone:
		if e.Seq != s.Seq || st.phase == phaseDone {
			return s, nil, nil // a replaced playback
		}
		n := iv.Nodes[st.Node]
		switch {
		case st.phase == phasePrompt && n.Kind == config.IVRPlay:
			r.enter(n.Next)
		case st.phase == phasePrompt && n.Kind == config.IVRMenu, st.phase == phaseInvalid && n.Kind == config.IVRMenu && n.Invalid == "":
			r.waitKey(n)
		case st.phase == phaseInvalid:
			r.play(n.Prompt, phasePrompt) // the menu again
		}
	case Timeout:
		if e.Seq != s.Seq || st.phase != phaseWaitKey {
			return s, nil, nil
		}
		r.wrong(iv.Nodes[st.Node])
	case Digit:
		n := iv.Nodes[st.Node]
		if n.Kind != config.IVRMenu || (st.phase != phasePrompt && st.phase != phaseWaitKey && st.phase != phaseInvalid) {
			return s, nil, nil // keys count in menus only
		}
		if to, ok := n.Options[string(e.Key)]; ok {
			if st.phase != phaseWaitKey {
				r.do(StopPlay{})
			}
			r.enter(to)
			break
		}
		if st.phase != phaseWaitKey {
			r.do(StopPlay{})
		}
		r.wrong(n)
	default:
		return s, nil, fmt.Errorf("ivr: unknown event %T", ev)
	}
	out := st.pending
	st.pending = nil
	return st, out, nil
}

type run struct {
	iv *config.IVR
	s  *State
}

func (r *run) do(a ...Action) { r.s.pending = append(r.s.pending, a...) }

// enter moves the caller to node id and starts what it does.
func (r *run) enter(id string) {
	s := r.s
	n, ok := r.iv.Nodes[id]
	if !ok {
		s.phase = phaseDone
		r.do(Hangup{})
		return
	}
	s.Node, s.Tries = id, 0
	if len(s.Path) < MaxPath {
		s.Path = append(s.Path, id)
	}
	r.do(Visit{Node: id, Kind: n.Kind})
	switch n.Kind {
	case config.IVRPlay, config.IVRMenu:
		r.play(n.Prompt, phasePrompt)
	case config.IVRTeam:
		s.phase = phaseDone
		r.do(Route{Team: n.Team})
	case config.IVRCallback:
		s.phase = phaseDone
		p := n.Prompt
		if p == "" {
			p = config.BuiltinPrefix + "unavailable"
		}
		r.do(Callback{}, Hangup{Prompts: []string{p}})
	case config.IVRHangup:
		s.phase = phaseDone
		var ps []string
		if n.Prompt != "" {
			ps = []string{n.Prompt}
		}
		r.do(Hangup{Prompts: ps})
	default:
		s.phase = phaseDone
		r.do(Hangup{})
	}
}

func (r *run) play(prompt string, ph phase) {
	s := r.s
	s.Seq++
	s.phase = ph
	r.do(Play{Prompts: []string{prompt}, Seq: s.Seq})
}

func (r *run) waitKey(n config.IVRNode) {
	s := r.s
	s.Seq++
	s.phase = phaseWaitKey
	r.do(Wait{After: n.Timeout, Seq: s.Seq})
}

// wrong: a key that leads nowhere, or none in time.
func (r *run) wrong(n config.IVRNode) {
	s := r.s
	s.Tries++
	if s.Tries > n.Retries {
		if n.Fallback != "" {
			r.enter(n.Fallback)
			return
		}
		s.phase = phaseDone
		r.do(Hangup{Prompts: []string{config.BuiltinPrefix + "goodbye"}})
		return
	}
	if n.Invalid != "" {
		r.play(n.Invalid, phaseInvalid)
		return
	}
	r.play(n.Prompt, phasePrompt)
}
