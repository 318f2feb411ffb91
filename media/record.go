package media

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// recSlots is each direction's ring size in packets (2.56 s of 20 ms
	// packets): how long a sink may stall before packets are dropped.
	recSlots = 128
	// recSlotSize is the largest packet the tap keeps (Opus voice is
	// 40-200 bytes; 512 bytes is 200 kb/s at 20 ms). Larger ones are
	// dropped and counted.
	recSlotSize = 512
	// recDrainEvery is how often the recording goroutine hands the rings'
	// packets to the sinks.
	recDrainEvery = 100 * time.Millisecond
)

// PacketSink receives one direction's Opus packets with RTP timestamps
// (48 kHz) of that direction, in order. recording/opusfile.Writer satisfies
// it. It is called from one goroutine at a time per sink; pkt is valid only
// during the call (the sink copies what it keeps).
type PacketSink interface {
	WritePacket(pkt []byte, ts uint32) error
}

// recRing is one direction's bounded packet ring, preallocated at
// StartRecording: the forwarding path copies a packet in (no allocation)
// or drops it when full; the recording goroutine reads slots in place.
type recRing struct {
	mu      sync.Mutex
	data    []byte // recSlots * recSlotSize
	size    [recSlots]uint16
	ts      [recSlots]uint32
	head, n int
	drops   prometheus.Counter
}

func newRecRing(drops prometheus.Counter) *recRing {
	return &recRing{data: make([]byte, recSlots*recSlotSize), drops: drops}
}

// push copies pkt into the ring; full or oversize packets are dropped and
// counted.
func (r *recRing) push(pkt []byte, ts uint32) {
	if len(pkt) > recSlotSize || len(pkt) == 0 {
		r.drops.Inc()
		return
	}
	r.mu.Lock()
	if r.n == recSlots {
		r.mu.Unlock()
		r.drops.Inc()
		return
	}
	i := (r.head + r.n) % recSlots
	copy(r.data[i*recSlotSize:], pkt)
	r.size[i], r.ts[i] = uint16(len(pkt)), ts
	r.n++
	r.mu.Unlock()
}

// drain hands every queued packet to sink (nil: discard). The slot being
// read stays counted until the sink returns, so push never overwrites it.
func (r *recRing) drain(sink PacketSink, err *error) {
	for {
		r.mu.Lock()
		if r.n == 0 {
			r.mu.Unlock()
			return
		}
		i := r.head
		pkt, ts := r.data[i*recSlotSize:i*recSlotSize+int(r.size[i])], r.ts[i]
		r.mu.Unlock()
		if *err == nil {
			if e := sink.WritePacket(pkt, ts); e != nil {
				*err = e // the sink failed: stop writing to it
			}
		}
		r.mu.Lock()
		r.head = (r.head + 1) % recSlots
		r.n--
		r.mu.Unlock()
	}
}

// recorder is one recording: both rings, both sinks and the goroutine that
// drains the rings into the sinks.
type recorder struct {
	user, biz         *recRing
	userSink, bizSink PacketSink
	userErr, bizErr   error
	stop, done        chan struct{}
}

// run drains the rings every recDrainEvery until stopped, then once more.
func (r *recorder) run() {
	defer close(r.done)
	t := time.NewTicker(recDrainEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			r.user.drain(r.userSink, &r.userErr)
			r.biz.drain(r.bizSink, &r.bizErr)
			return
		case <-t.C:
			r.user.drain(r.userSink, &r.userErr)
			r.biz.drain(r.bizSink, &r.bizErr)
		}
	}
}

// StartRecording taps both directions of the call: user receives the Opus
// packets the WhatsApp user sends us (their timestamps), business exactly
// the Opus packets we send toward WhatsApp — agent audio as rewritten,
// prompts, hold music, silence — with our continuous timestamps. DTMF
// (telephone-event) packets are not recorded in either direction: in the
// business direction they leave a timestamp gap (an Ogg writer such as
// recording/opusfile fills it with silence). The forwarding path only
// copies each packet into a preallocated ring (128 packets per direction,
// packets up to 512 bytes; no allocation per packet); one goroutine per
// recording hands them to the sinks every 100 ms, so a slow sink never
// blocks forwarding: when a ring is full packets are dropped and counted
// (callgw_media_recording_packets_dropped_total). After a sink returns an
// error it is not called again (StopRecording returns the error).
// ErrRecording if a recording is already on.
func (b *Bridge) StartRecording(user, business PacketSink) error {
	if user == nil || business == nil {
		return fmt.Errorf("%w: nil sink", ErrRecording)
	}
	b.out.recMu.Lock()
	defer b.out.recMu.Unlock()
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if b.out.rec.Load() != nil {
		return fmt.Errorf("%w: already recording", ErrRecording)
	}
	m := b.e.metrics
	r := &recorder{user: newRecRing(m.recDropUser), biz: newRecRing(m.recDropBiz),
		userSink: user, bizSink: business, stop: make(chan struct{}), done: make(chan struct{})}
	b.out.rec.Store(r)
	go r.run()
	return nil
}

// StopRecording stops the tap, hands the packets still queued to the sinks
// and returns once no sink method will be called again, with the sinks'
// errors if any (a sink that never returns blocks it: sinks must not block
// forever). It does not close the sinks. No-op when not recording; Close
// calls it.
func (b *Bridge) StopRecording() error {
	b.out.recMu.Lock()
	defer b.out.recMu.Unlock()
	r := b.out.rec.Swap(nil)
	if r == nil {
		return nil
	}
	close(r.stop)
	<-r.done
	var errs []error
	if r.userErr != nil {
		errs = append(errs, fmt.Errorf("media: recording user sink: %w", r.userErr))
	}
	if r.bizErr != nil {
		errs = append(errs, fmt.Errorf("media: recording business sink: %w", r.bizErr))
	}
	return errors.Join(errs...)
}

// Recording reports whether the recording tap is on.
func (b *Bridge) Recording() bool { return b.out.rec.Load() != nil }
