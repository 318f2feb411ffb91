package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	lc "github.com/callgw/callgw/signaling/lifecycle"
	"github.com/callgw/callgw/signaling/webhook"
)

// Recordings is how call control asks for recordings (internal/app
// implements it with package recording). The call methods are called from
// the call's actor goroutine and must not block: they start work and return.
type Recordings interface {
	// MetaOptions returns the recording/transcription objects to send on
	// a call's accept (user-initiated) or connect (business-initiated) for
	// business number number and user u; nil omits an object.
	MetaOptions(number string, u phone.User) (rec, tr *cloudapi.MediaOpt)
	// MediaAvailable takes a call_recording_available or
	// call_transcription_available calls[] item (as received) for number.
	// An error asks Meta to deliver the webhook again.
	MediaAvailable(ctx context.Context, number string, raw json.RawMessage) error
	// Answered says media flows both ways on an answered call (after the
	// accept 200, or the user's pickup): local recording starts here. b is
	// the call's bridge.
	Answered(r call.Record, b Bridge)
	// DTMF is a key the WhatsApp user pressed during the call.
	DTMF(id call.ID, digit rune)
	// Ending says the call's media is about to close; it returns the
	// recording consent to write on the call record ("" = none to write).
	Ending(r call.Record) string
}

// AcceptWither is a Graph that can send accept with recording and
// transcription objects (cloudapi.Client). A Graph without it accepts
// without them.
type AcceptWither interface {
	AcceptWith(ctx context.Context, r cloudapi.AcceptRequest) error
}

// ErrRecordingRefused is returned by StopRecording when the number's policy
// does not let the agent stop the recording, or nothing is recorded.
var ErrRecordingRefused = errors.New("signaling: the recording cannot be stopped")

// RecordingStopper is what Recordings implements when agents may stop a
// local recording (StopRecording).
type RecordingStopper interface {
	// StopLocal stops the call's local recording for agent (the agent on
	// the call); ErrRecordingRefused when the policy forbids it or nothing
	// is being recorded.
	StopLocal(id call.ID, agent string) error
}

// RecordingState is a call's local recording as its agent sees it
// (agents.CallInfo.Recording).
type RecordingState uint8

const (
	RecordingNone    RecordingState = iota // nothing recorded locally
	RecordingConsent                       // the consent prompt plays, or callgw waits for the caller's key
	RecordingOn                            // both directions are being recorded
	RecordingStopped                       // stopped during the call (agent or supervisor)
	RecordingRefused                       // the caller did not give explicit consent
)

// String is the protocol's value ("" for none).
func (s RecordingState) String() string {
	switch s {
	case RecordingConsent:
		return "consent"
	case RecordingOn:
		return "on"
	case RecordingStopped:
		return "stopped"
	case RecordingRefused:
		return "refused"
	}
	return ""
}

// RecordingStater is what Recordings implements to show agents a call's
// local recording (CallInfo.Recording, RecordingMayStop). LocalState is
// called from the call's actor whenever its CallInfo is built: it must not
// block. The implementation calls Controller.RecordingChanged when the
// state changes on its own (consent flow).
type RecordingStater interface {
	LocalState(id call.ID) (st RecordingState, agentMayStop bool)
}

// RecordingChanged says the local recording of call id changed: the
// call's info is built again and sent to its agent (call). Calls this
// instance does not hold are ignored. Call it from the recorder's own
// goroutines, never from a Recordings hook (those run on the actor).
func (c *Controller) RecordingChanged(id call.ID) {
	if l := c.lookup(id); l != nil {
		l.post(func(l *liveCall) { l.recordingRefresh() })
	}
}

// recordingRefresh publishes the call's info again and sends it to the
// agent who has the call.
func (l *liveCall) recordingRefresh() {
	if !l.lc.State.Live() {
		return
	}
	l.mirror()
	l.saveState()
	if l.lc.Agent != "" {
		l.c.toAgent(l.lc.Agent, agents.CallMsg{Type: agents.TypeCall, Call: *l.snap.Load()})
	}
}

// recordingInfo adds the local recording to what agents see of the call.
func (l *liveCall) recordingInfo(ci *agents.CallInfo) {
	if !l.recStarted {
		return
	}
	if rs, ok := l.c.recs.(RecordingStater); ok {
		st, may := rs.LocalState(l.id)
		ci.Recording, ci.RecordingMayStop = st.String(), may && st != RecordingNone
	}
}

// SetRecordings connects the recording hooks (before Run). nil = none. The
// Dialer is wrapped so that connect carries Meta's objects.
func (c *Controller) SetRecordings(r Recordings) {
	c.recs = r
	if r != nil && c.dial != nil {
		c.dial = recordingDialer{Dialer: c.dial, recs: r, number: c.cfg.PhoneNumberID}
	}
	if inner := c.dialers; r != nil && inner != nil {
		c.dialers = func(pnid string) Dialer {
			if d := inner(pnid); d != nil {
				return recordingDialer{Dialer: d, recs: r, number: pnid}
			}
			return nil
		}
	}
}

// recordingDialer adds Meta's recording/transcription objects of the
// number's policy to connect (business-initiated calls).
type recordingDialer struct {
	Dialer
	recs   Recordings
	number string
}

func (d recordingDialer) ConnectUser(ctx context.Context, r cloudapi.ConnectRequest) (string, error) {
	if r.Recording == nil && r.Transcription == nil {
		u := phone.User{BSUID: r.User.BSUID}
		if n, err := phone.Parse(r.User.Phone); r.User.Phone != "" && err == nil {
			u.Phone = n
		}
		r.Recording, r.Transcription = d.recs.MetaOptions(d.number, u)
	}
	return d.Dialer.ConnectUser(ctx, r)
}

// accept sends the call's accept, with Meta's recording/transcription
// objects when the policy asks for them.
func (l *liveCall) accept(ctx context.Context) error {
	c := l.c
	g := c.graphFor(l.lc.Rec.PhoneNumberID)
	if c.recs != nil {
		if aw, ok := g.(AcceptWither); ok {
			rec, tr := c.recs.MetaOptions(l.number(), recUser(l.lc.Rec))
			if rec != nil || tr != nil {
				return aw.AcceptWith(ctx, cloudapi.AcceptRequest{CallID: string(l.id), AnswerSDP: l.waAnswer,
					BizOpaque: l.lc.Rec.Opaque, Recording: rec, Transcription: tr})
			}
		}
	}
	return g.Accept(ctx, string(l.id), l.waAnswer, l.lc.Rec.Opaque)
}

// number is the business number of the call.
func (l *liveCall) number() string {
	if n := l.lc.Rec.PhoneNumberID; n != "" {
		return n
	}
	return l.c.cfg.PhoneNumberID
}

// recordingAnswered tells the hooks, once, that media flows on an answered
// call: connected, picked up, media started toward WhatsApp (whether an
// agent's accept or callgw's own accept answered it).
func (l *liveCall) recordingAnswered() {
	if l.c.recs != nil && l.bridge != nil && l.lc.PickedUp && l.lc.State == lc.StateConnected && !l.recStarted {
		l.recStarted = true
		r := l.lc.Rec
		r.PhoneNumberID = l.number()
		l.c.recs.Answered(r, l.bridge)
	}
}

// recordingEnding tells the hooks the media closes and writes the consent
// obtained on the record.
func (l *liveCall) recordingEnding() {
	if l.c.recs == nil || !l.recStarted {
		return
	}
	r := l.lc.Rec
	r.PhoneNumberID = l.number()
	if consent := l.c.recs.Ending(r); consent != "" {
		l.lc.Rec.RecordingConsent = consent
	}
}

// recordingDTMF passes a user's key to the hooks.
func (l *liveCall) recordingDTMF(d rune) {
	if l.c.recs != nil {
		l.c.recs.DTMF(l.id, d)
	}
}

// mediaAvailable hands Meta's recording/transcription webhook to the hooks.
func (c *Controller) mediaAvailable(ctx context.Context, ev webhook.Event) error {
	if c.recs == nil {
		return errIgnored
	}
	number := ev.PhoneNumberID
	if number == "" {
		number = c.cfg.PhoneNumberID
	}
	if err := c.recs.MediaAvailable(ctx, number, ev.Raw); err != nil {
		return fmt.Errorf("%w: recording: %w", ErrStore, err)
	}
	return nil
}

// StopRecording stops the local recording of a call of this instance, for
// the agent who has it (agent "" = a supervisor or admin, always allowed
// when something is recorded).
func (c *Controller) StopRecording(ctx context.Context, id call.ID, agent string) error {
	l := c.lookup(id)
	if l == nil {
		return ErrUnknownCall
	}
	if agent != "" {
		if owner, _ := l.agent.Load().(string); owner != agent {
			return ErrNotYourCall
		}
	}
	st, ok := c.recs.(RecordingStopper)
	if !ok {
		return ErrRecordingRefused
	}
	if err := st.StopLocal(id, agent); err != nil {
		return err
	}
	c.RecordingChanged(id) // the agent sees "stopped"
	return nil
}

// recordingStopMsg is the agent protocol's recording_stop: the agent on the
// call stops its local recording where the policy allows it (the call must
// live on this instance).
func (c *Controller) recordingStopMsg(ctx context.Context, s *agents.Session, m *agents.ClientMessage) error {
	err := c.StopRecording(ctx, call.ID(m.CallID), s.Agent)
	if errors.Is(err, ErrRecordingRefused) {
		return &agents.CodedError{Code: agents.CodeRecordingRefused, Err: err,
			Message: "nothing is being recorded, or this number's policy does not let agents stop the recording"}
	}
	if err != nil {
		return err
	}
	s.Send(agents.RecordingMsg{Type: agents.TypeRecording, Ref: m.Ref, CallID: m.CallID, State: "stopped"})
	return nil
}
