package media

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Trimming Pion's idle goroutines of a fast leg (issue 16).
//
// Once a leg is on the fast path, 9 goroutines per leg remain, all ICE and
// DTLS. Two of them only wait for something that can no longer matter:
//
//   - The ICE gathering context's watcher. ice.Agent.GatherCandidates
//     derives the gathering context from the agent's task loop, a custom
//     context.Context, so context.WithCancel starts a goroutine waiting on
//     both; its cancel func stays in Agent.gatherCandidateCancel until the
//     next gathering or the agent's close. Once the gathering is complete
//     (and gathers once, as ours do: no network monitoring), nothing uses
//     that context any more: we cancel it, inside the agent's task loop as
//     Pion itself does (every write of those fields happens there). Never
//     while a gathering is in progress: an agent leg with STUN/TURN servers
//     may still be gathering when it connects; it is then cancelled when
//     the gatherer reports "complete" (PeerConnection's
//     OnICEGatheringStateChange, which this package owns).
//   - The DTLS handshake FSM. After the handshake it waits in its finish
//     state only to retransmit our last flight, should the remote ask again
//     for want of it. The remote's first SRTP packet that decrypts proves it
//     finished its handshake (its SRTP keys come from the handshake's
//     exporter, available once it completed), so it will never ask again, in
//     either DTLS role: at that packet we call dtls.Conn.cancelHandshaker
//     (captured at goFast, under the conn's closeLock as Pion writes it),
//     once per leg. The DTLS read loop stays: alerts and close_notify still
//     reach Pion (a late handshake record is dropped: the read loop hands
//     handshake records to the FSM only while it runs). dtls.Conn.Close
//     still works: it calls the (idempotent) cancel again and waits only
//     for the handshake call, long returned.
//
// Both reach private fields of Pion by reflection and unsafe, like
// dtlsConnOf; if a Pion upgrade moves them, pionTrimFields fails (and
// TestPionTrimFields with it), the leg logs it at debug and keeps both
// goroutines.

// trimTimeout bounds the wait for an ICE agent's task loop (its tasks are
// short: a busy loop for this long means the agent is in trouble anyway).
const trimTimeout = time.Second

// legTrim is a fast leg's part of the trimming.
type legTrim struct {
	// endHandshake cancels the leg's DTLS handshake FSM: set before the
	// leg is published to the read goroutine, then read goroutine only;
	// nil once called (or when Pion's field is missing).
	endHandshake func()
	// handshakeEnded and gatherEnded say what was trimmed (tests, Diagnose).
	handshakeEnded atomic.Bool
	gatherEnded    atomic.Bool
}

// pionOffsets are the byte offsets of the private Pion fields the trimming
// uses, checked by name and type once per process.
type pionOffsets struct {
	iceGatherer   uintptr // webrtc.ICETransport.gatherer *webrtc.ICEGatherer
	gathererLock  uintptr // webrtc.ICEGatherer.lock sync.RWMutex
	gathererAgent uintptr // webrtc.ICEGatherer.agent *ice.Agent
	agentLoop     uintptr // ice.Agent.loop *taskloop.Loop
	agentCancel   uintptr // ice.Agent.gatherCandidateCancel func()
	agentState    uintptr // ice.Agent.gatheringState ice.GatheringState
	agentPolicy   uintptr // ice.Agent.continualGatheringPolicy ice.ContinualGatheringPolicy
	dtlsCloseLock uintptr // dtls.Conn.closeLock sync.Mutex
	dtlsCancelHS  uintptr // dtls.Conn.cancelHandshaker func()
	loopType      reflect.Type
	loopRun       reflect.Method // (*taskloop.Loop).Run(ctx, func(ctx)) error
}

var pionTrimFields = sync.OnceValues(func() (*pionOffsets, error) {
	var o pionOffsets
	var err error
	field := func(owner any, name string, want reflect.Type) uintptr {
		if err != nil {
			return 0
		}
		t := reflect.TypeOf(owner)
		f, ok := t.FieldByName(name)
		switch {
		case !ok:
			err = fmt.Errorf("%w: pion %v has no %s field", ErrFastPath, t, name)
		case want != nil && f.Type != want:
			err = fmt.Errorf("%w: pion %v.%s is %v, not %v", ErrFastPath, t, name, f.Type, want)
		case len(f.Index) != 1:
			err = fmt.Errorf("%w: pion %v.%s is promoted", ErrFastPath, t, name)
		}
		return f.Offset
	}
	fn := reflect.TypeOf((func())(nil))
	o.iceGatherer = field(webrtc.ICETransport{}, "gatherer", reflect.TypeOf((*webrtc.ICEGatherer)(nil)))
	o.gathererLock = field(webrtc.ICEGatherer{}, "lock", reflect.TypeOf(sync.RWMutex{}))
	o.gathererAgent = field(webrtc.ICEGatherer{}, "agent", reflect.TypeOf((*ice.Agent)(nil)))
	o.agentLoop = field(ice.Agent{}, "loop", nil)
	o.agentCancel = field(ice.Agent{}, "gatherCandidateCancel", fn)
	o.agentState = field(ice.Agent{}, "gatheringState", reflect.TypeOf(ice.GatheringState(0)))
	o.agentPolicy = field(ice.Agent{}, "continualGatheringPolicy", reflect.TypeOf(ice.ContinualGatheringPolicy(0)))
	o.dtlsCloseLock = field(dtls.Conn{}, "closeLock", reflect.TypeOf(sync.Mutex{}))
	o.dtlsCancelHS = field(dtls.Conn{}, "cancelHandshaker", fn)
	if err != nil {
		return nil, err
	}
	// The agent's task loop: a pointer with Run(ctx, func(ctx)) error.
	lf, _ := reflect.TypeOf(ice.Agent{}).FieldByName("loop")
	o.loopType = lf.Type
	m, ok := lf.Type.MethodByName("Run")
	ctxT := reflect.TypeOf((*context.Context)(nil)).Elem()
	errT := reflect.TypeOf((*error)(nil)).Elem()
	if lf.Type.Kind() != reflect.Pointer || !ok || m.Type.NumIn() != 3 || m.Type.In(1) != ctxT ||
		m.Type.In(2) != reflect.TypeOf((func(context.Context))(nil)) || m.Type.NumOut() != 1 || m.Type.Out(0) != errT {
		return nil, fmt.Errorf("%w: pion ice.Agent.loop (%v) has no Run(context.Context, func(context.Context)) error", ErrFastPath, lf.Type)
	}
	o.loopRun = m
	return &o, nil
})

// handshakeCanceller returns the cancel func of a connected DTLSTransport's
// handshake FSM (dtls.Conn.cancelHandshaker).
func handshakeCanceller(t *webrtc.DTLSTransport) (func(), error) {
	o, err := pionTrimFields()
	if err != nil {
		return nil, err
	}
	conn, err := dtlsConnOf(t)
	if err != nil {
		return nil, err
	}
	if _, ok := conn.ConnectionState(); !ok {
		return nil, fmt.Errorf("%w: dtls handshake not complete", ErrFastPath)
	}
	p := unsafe.Pointer(conn)
	mu := (*sync.Mutex)(unsafe.Add(p, o.dtlsCloseLock))
	mu.Lock()
	cancel := *(*func())(unsafe.Add(p, o.dtlsCancelHS))
	mu.Unlock()
	if cancel == nil {
		return nil, fmt.Errorf("%w: dtls handshaker cancel unset", ErrFastPath)
	}
	return cancel, nil
}

// gatherTrim cancels a leg's finished ICE gathering context.
type gatherTrim struct {
	o     *pionOffsets
	agent unsafe.Pointer // *ice.Agent
	loop  reflect.Value  // *taskloop.Loop
}

// newGatherTrim reaches the ICE agent of pc (after its gathering started).
func newGatherTrim(pc *webrtc.PeerConnection) (*gatherTrim, error) {
	o, err := pionTrimFields()
	if err != nil {
		return nil, err
	}
	it := pc.SCTP().Transport().ICETransport()
	if it == nil {
		return nil, fmt.Errorf("%w: no ice transport", ErrFastPath)
	}
	g := *(**webrtc.ICEGatherer)(unsafe.Add(unsafe.Pointer(it), o.iceGatherer))
	if g == nil {
		return nil, fmt.Errorf("%w: no ice gatherer", ErrFastPath)
	}
	// as ICEGatherer.getAgent (never from one of the gatherer's callbacks:
	// its close holds the lock while waiting for them)
	mu := (*sync.RWMutex)(unsafe.Add(unsafe.Pointer(g), o.gathererLock))
	mu.RLock()
	a := *(**ice.Agent)(unsafe.Add(unsafe.Pointer(g), o.gathererAgent))
	mu.RUnlock()
	if a == nil {
		return nil, fmt.Errorf("%w: no ice agent", ErrFastPath)
	}
	loop := reflect.NewAt(o.loopType, unsafe.Add(unsafe.Pointer(a), o.agentLoop)).Elem()
	if loop.IsNil() {
		return nil, fmt.Errorf("%w: ice agent has no task loop", ErrFastPath)
	}
	return &gatherTrim{o: o, agent: unsafe.Pointer(a), loop: loop}, nil
}

// run cancels the gathering context if the agent's gathering is complete
// and gathers once; it tells whether it did (again: cancelling twice is
// harmless). It runs as a task of the agent's loop, so it waits for the
// loop (at most until ctx ends) and fails once the agent is closed.
func (g *gatherTrim) run(ctx context.Context) (bool, error) {
	var done bool
	task := func(context.Context) {
		if *(*ice.GatheringState)(unsafe.Add(g.agent, g.o.agentState)) != ice.GatheringStateComplete ||
			*(*ice.ContinualGatheringPolicy)(unsafe.Add(g.agent, g.o.agentPolicy)) != ice.GatherOnce {
			return
		}
		if cancel := *(*func())(unsafe.Add(g.agent, g.o.agentCancel)); cancel != nil {
			cancel()
			done = true
		}
	}
	out := g.o.loopRun.Func.Call([]reflect.Value{g.loop, reflect.ValueOf(ctx), reflect.ValueOf(task)})
	if err, _ := out[0].Interface().(error); err != nil {
		return false, fmt.Errorf("%w: ice agent loop: %w", ErrFastPath, err)
	}
	return done, nil
}

// trimHandshake prepares fast leg fl to end its DTLS handshake FSM at the
// first packet from the remote that decrypts. Called by goFast before fl
// is published to the read goroutine.
func (b *Bridge) trimHandshake(l *leg, fl *fastLeg) {
	cancel, err := handshakeCanceller(l.pc.SCTP().Transport())
	if err != nil {
		b.log.Debug("pion dtls handshake goroutine stays on a fast leg", "leg", l.kind.String(), "err", err)
		return
	}
	fl.trim.endHandshake = cancel
}

// handshakeOver ends the leg's DTLS handshake FSM (read goroutine, once:
// fastLeg.receive calls it while endHandshake is set).
func (fl *fastLeg) handshakeOver() {
	cancel := fl.trim.endHandshake
	fl.trim.endHandshake = nil
	cancel()
	fl.trim.handshakeEnded.Store(true)
}

// trimGathering cancels the finished ICE gathering context of fast leg fl
// now, or when its gathering completes (again after any later gathering).
// Called by goFast, never from a callback of the leg's ICE agent.
func (b *Bridge) trimGathering(l *leg, fl *fastLeg) {
	g, err := newGatherTrim(l.pc)
	if err != nil {
		b.log.Debug("pion ice gathering goroutine stays on a fast leg", "leg", l.kind.String(), "err", err)
		return
	}
	try := func() {
		ctx, cancel := context.WithTimeout(context.Background(), trimTimeout)
		defer cancel()
		ok, err := g.run(ctx)
		switch {
		case err != nil:
			b.log.Debug("pion ice gathering goroutine stays on a fast leg", "leg", l.kind.String(), "err", err)
		case ok:
			fl.trim.gatherEnded.Store(true)
		}
	}
	// Registered before the check: a gathering completing in between is
	// seen by one or the other (both: cancelled twice, harmless). The
	// handler runs in the agent's candidate notifier, not in its loop.
	l.pc.OnICEGatheringStateChange(func(s webrtc.ICEGatheringState) {
		if s == webrtc.ICEGatheringStateComplete {
			try()
		}
	})
	if l.pc.ICEGatheringState() == webrtc.ICEGatheringStateComplete {
		try()
	}
}
