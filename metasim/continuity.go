package metasim

import (
	"sync"
	"time"
)

// Continuity describes the RTP stream the simulated WhatsApp user received
// from the business: Meta's client expects one SSRC with continuous
// sequence numbers and timestamps, whatever the business switched behind it
// (agents, hold music, transfers).
type Continuity struct {
	Packets       int           // RTP packets received (Opus and telephone-event)
	SSRCs         int           // distinct SSRCs
	SeqGaps       int           // packets whose sequence number is not the previous + 1
	TSBackwards   int           // packets whose timestamp is before the previous one
	MaxTSStep     uint32        // largest timestamp step between consecutive packets
	MaxArrivalGap time.Duration // longest wall-clock silence between two packets
}

// continuity accumulates Continuity from the read loop.
type continuity struct {
	mu    sync.Mutex
	c     Continuity
	ssrcs map[uint32]bool
	seq   uint16
	ts    uint32
	at    time.Time
}

func (k *continuity) observe(now time.Time, ssrc uint32, seq uint16, ts uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ssrcs == nil {
		k.ssrcs = map[uint32]bool{}
	}
	if !k.ssrcs[ssrc] {
		k.ssrcs[ssrc] = true
		k.c.SSRCs++
	}
	if k.c.Packets > 0 {
		if seq != k.seq+1 {
			k.c.SeqGaps++
		}
		if d := int32(ts - k.ts); d < 0 {
			k.c.TSBackwards++
		} else if uint32(d) > k.c.MaxTSStep {
			k.c.MaxTSStep = uint32(d)
		}
		if g := now.Sub(k.at); g > k.c.MaxArrivalGap {
			k.c.MaxArrivalGap = g
		}
	}
	k.c.Packets++
	k.seq, k.ts, k.at = seq, ts, now
}

// Continuity returns what the user's RTP stream looked like so far.
func (c *UserCall) Continuity() Continuity {
	c.cont.mu.Lock()
	defer c.cont.mu.Unlock()
	return c.cont.c
}
