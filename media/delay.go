package media

import (
	"math"
	"sync/atomic"
	"time"
)

// The forward delay histogram (Config.MeasureForwardDelay): how long a
// forwarded packet spent in the gateway, from its arrival in the socket's
// receive queue (the kernel's timestamp) to the return of the sendmmsg that
// sent it on. It is what the gateway adds to a packet's one-way latency:
// the wait in the queue behind other packets, decryption, forwarding,
// encryption and the wait for the rest of its batch.

// delayBucket is the histogram's resolution; delayBuckets cover 0..10 ms,
// the last bucket also counting everything above.
const (
	delayBucket  = 10 * time.Microsecond
	delayBuckets = 1000
)

// delayHist counts delays in delayBucket steps (atomics: observed in the
// read goroutine or the pacer, read by ForwardDelay).
type delayHist struct {
	counts [delayBuckets + 1]atomic.Uint64
}

func (h *delayHist) observe(d time.Duration) {
	i := int(d / delayBucket)
	if i < 0 {
		i = 0
	}
	if i > delayBuckets {
		i = delayBuckets
	}
	h.counts[i].Add(1)
}

// DelayHistogram is a snapshot of the forward delay histogram: Counts[i]
// packets were delayed [i*Bucket, (i+1)*Bucket); the last also counts
// everything longer.
type DelayHistogram struct {
	Bucket time.Duration
	Counts []uint64
}

// ForwardDelay returns the forward delay histogram since start (nil
// Counts unless Config.MeasureForwardDelay on the fast path on Linux).
func (e *Engine) ForwardDelay() DelayHistogram {
	h := DelayHistogram{Bucket: delayBucket}
	if e.fast == nil || e.fast.delay == nil {
		return h
	}
	h.Counts = make([]uint64, len(e.fast.delay.counts))
	for i := range h.Counts {
		h.Counts[i] = e.fast.delay.counts[i].Load()
	}
	return h
}

// Sub returns the histogram of what was counted between before and h.
func (h DelayHistogram) Sub(before DelayHistogram) DelayHistogram {
	out := DelayHistogram{Bucket: h.Bucket, Counts: make([]uint64, len(h.Counts))}
	for i, c := range h.Counts {
		if i < len(before.Counts) {
			c -= before.Counts[i]
		}
		out.Counts[i] = c
	}
	return out
}

// Total is the number of packets counted.
func (h DelayHistogram) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket holding quantile q (the
// nearest rank)
// 0 < q ≤ 1, or 0 when nothing was counted.
func (h DelayHistogram) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total))) // nearest rank
	if want == 0 {
		want = 1
	}
	var n uint64
	for i, c := range h.Counts {
		if n += c; n >= want {
			return time.Duration(i+1) * h.Bucket
		}
	}
	return time.Duration(len(h.Counts)) * h.Bucket
}
