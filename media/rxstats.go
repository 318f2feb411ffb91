package media

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// rxStats tracks one received RTP stream (RFC 3550 appendix A.1 and A.8):
// counts, loss from sequence gaps and interarrival jitter. The read loop is
// the only writer; Stats and the RTCP reporter read under mu.
type rxStats struct {
	mu sync.Mutex

	started   bool
	ssrc      uint32
	baseSeq   uint32
	maxSeq    uint16
	cycles    uint32
	received  uint64
	bytes     uint64
	lostSeen  int64 // loss already counted in the metric
	lastAt    time.Time
	transit   uint32
	hasTrans  bool
	jitter16  int64 // jitter in clock units, scaled by 16 (RFC 3550 A.8)
	clockRate uint32

	// receiver report interval state
	expectedPrior, receivedPrior uint64
	srNTPMid                     uint32    // middle 32 bits of the last SR's NTP time
	srAt                         time.Time // when it arrived
}

// update records one packet; arrivalUS is microseconds since the engine
// epoch; audio is true for the Opus payload type (jitter is computed on it
// only). It returns how many newly lost packets were detected.
func (s *rxStats) update(now time.Time, arrivalUS int64, ssrc uint32, seq uint16, ts uint32, payloadLen int, audio bool) int64 {
	s.mu.Lock()
	if !s.started || ssrc != s.ssrc {
		s.started, s.ssrc = true, ssrc
		s.baseSeq, s.maxSeq, s.cycles = uint32(seq), seq, 0
		s.received, s.expectedPrior, s.receivedPrior = 0, 0, 0
		s.lostSeen, s.hasTrans, s.jitter16 = 0, false, 0
	} else if d := seq - s.maxSeq; d != 0 && d < 0x8000 {
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	}
	s.received++
	s.bytes += uint64(payloadLen)
	s.lastAt = now
	if audio && s.clockRate != 0 {
		arrival := uint32(arrivalUS * int64(s.clockRate) / 1_000_000)
		transit := arrival - ts
		if s.hasTrans {
			d := int64(int32(transit - s.transit))
			if d < 0 {
				d = -d
			}
			s.jitter16 += d - ((s.jitter16 + 8) >> 4)
		}
		s.transit, s.hasTrans = transit, true
	}
	lost := s.lostLocked()
	delta := lost - s.lostSeen
	if delta > 0 {
		s.lostSeen = lost
	} else {
		delta = 0
	}
	s.mu.Unlock()
	return delta
}

func (s *rxStats) lostLocked() int64 {
	expected := int64(s.cycles+uint32(s.maxSeq)) - int64(s.baseSeq) + 1
	lost := expected - int64(s.received)
	if lost < 0 {
		return 0
	}
	return lost
}

// gotSR records the arrival of a sender report from the stream's source.
func (s *rxStats) gotSR(now time.Time, ssrc uint32, ntp uint64) {
	s.mu.Lock()
	if !s.started || ssrc != s.ssrc {
		s.mu.Unlock()
		return
	}
	s.srNTPMid = uint32(ntp >> 16)
	s.srAt = now
	s.mu.Unlock()
}

// reportBlock builds the reception report for this stream; ok is false
// before the first packet.
func (s *rxStats) reportBlock(now time.Time) (rcp rtcp.ReceptionReport, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return rcp, false
	}
	extMax := s.cycles + uint32(s.maxSeq)
	expected := uint64(int64(extMax) - int64(s.baseSeq) + 1)
	expInt := expected - s.expectedPrior
	recInt := s.received - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.received
	var fraction uint8
	if expInt > 0 && expInt > recInt {
		fraction = uint8(((expInt - recInt) << 8) / expInt)
	}
	lost := s.lostLocked()
	if lost > 0x7fffff {
		lost = 0x7fffff
	}
	var dlsr uint32
	if !s.srAt.IsZero() {
		dlsr = uint32(now.Sub(s.srAt).Seconds() * 65536)
	}
	return rtcp.ReceptionReport{
		SSRC:               s.ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost),
		LastSequenceNumber: extMax,
		Jitter:             uint32(s.jitter16 >> 4),
		LastSenderReport:   s.srNTPMid,
		Delay:              dlsr,
	}, true
}

// snapshot fills the receive half of LegStats.
func (s *rxStats) snapshot(ls *LegStats) {
	s.mu.Lock()
	ls.PacketsReceived = s.received
	ls.BytesReceived = s.bytes
	ls.PacketsLost = uint64(s.lostLocked())
	if s.clockRate != 0 {
		ls.Jitter = time.Duration((s.jitter16 >> 4) * int64(time.Second) / int64(s.clockRate))
	}
	ls.LastPacketAt = s.lastAt
	s.mu.Unlock()
}

// ntpTime converts t to the 64-bit NTP format used in RTCP.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := (uint64(t.Nanosecond()) << 32) / 1_000_000_000
	return secs<<32 | frac
}

// rttFrom computes the round trip time from a reception report about our
// stream (RFC 3550 6.4.1); ok is false when the report carries no LSR.
func rttFrom(now time.Time, rr rtcp.ReceptionReport) (time.Duration, bool) {
	if rr.LastSenderReport == 0 {
		return 0, false
	}
	mid := uint32(ntpTime(now) >> 16)
	d := int32(mid - rr.LastSenderReport - rr.Delay)
	if d < 0 {
		return 0, false
	}
	return time.Duration(int64(d) * int64(time.Second) / 65536), true
}
