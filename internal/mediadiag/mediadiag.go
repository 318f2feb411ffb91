package mediadiag

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Cause is why a leg carries no media. The zero value is CauseUnknown.
type Cause int

// Causes, from the earliest stage that went wrong.
const (
	CauseUnknown Cause = iota
	// CauseNoRemoteCandidates: the peer's candidates never arrived (SDP
	// without candidates and no trickle): a signaling problem.
	CauseNoRemoteCandidates
	// CauseNothingFromPeer: checks were sent but not a single packet of
	// the peer ever arrived (no check, no response): its packets are
	// blocked or go elsewhere — a wrong announced public address, a port
	// not forwarded, a firewall, UDP blocked without TURN.
	CauseNothingFromPeer
	// CauseChecksUnanswered: the peer's checks arrive but ours are never
	// answered: our packets do not reach it (its NAT or firewall filters
	// us, or its candidates are wrong).
	CauseChecksUnanswered
	// CauseICEFailed: checks went both ways but no pair succeeded.
	CauseICEFailed
	// CauseDTLSFailed: ICE connected, the DTLS handshake did not complete
	// (certificate fingerprint mismatch, packets lost after ICE).
	CauseDTLSFailed
	// CauseNoMediaFromPeer: the transport is up and no RTP ever arrived:
	// the peer does not send.
	CauseNoMediaFromPeer
	// CauseMediaStopped: RTP arrived, then stopped.
	CauseMediaStopped
)

var causeNames = [...]string{"unknown", "no_remote_candidates", "nothing_from_peer", "checks_unanswered",
	"ice_failed", "dtls_failed", "no_media_from_peer", "media_stopped"}

func (c Cause) String() string {
	if c < 0 || int(c) >= len(causeNames) {
		return causeNames[0]
	}
	return causeNames[c]
}

// Causes lists every cause (for pre-registering metric series).
func Causes() []Cause {
	out := make([]Cause, len(causeNames))
	for i := range out {
		out[i] = Cause(i)
	}
	return out
}

// Diagnosis is what Diagnose found.
type Diagnosis struct {
	Cause Cause
	// Pairs is the number of candidate pairs; the counters are summed over
	// them.
	Pairs                                         int
	RequestsSent, RequestsReceived, ResponsesRecv uint64
	ICEState                                      webrtc.ICETransportState
	DTLSState                                     webrtc.DTLSTransportState
	// LocalTypes and RemoteTypes are the candidate types seen ("host",
	// "srflx", "prflx", "relay"), sorted; Selected is "local/remote" of the
	// selected pair, empty if none.
	LocalTypes, RemoteTypes []string
	Selected                string
	RTPPackets              uint64
}

// String is a one-line summary for logs (no addresses).
func (d Diagnosis) String() string {
	sel := d.Selected
	if sel == "" {
		sel = "none"
	}
	return fmt.Sprintf("%s: %d pairs, checks sent %d, received %d, answered %d, ice %s, dtls %s, local [%s], remote [%s], selected %s, rtp %d",
		d.Cause, d.Pairs, d.RequestsSent, d.RequestsReceived, d.ResponsesRecv, d.ICEState, d.DTLSState,
		strings.Join(d.LocalTypes, " "), strings.Join(d.RemoteTypes, " "), sel, d.RTPPackets)
}

// Diagnose classifies a leg that should carry media and does not, from
// its PeerConnection's stats and the RTP packets it received.
func Diagnose(r webrtc.StatsReport, rtpPackets uint64) Diagnosis {
	d := Diagnosis{RTPPackets: rtpPackets}
	cands := map[string]string{} // id -> type
	var selectedID string
	for _, s := range r {
		switch s := s.(type) {
		case webrtc.ICECandidateStats:
			cands[s.ID] = s.CandidateType.String()
		case webrtc.TransportStats:
			d.ICEState, d.DTLSState = s.ICEState, s.DTLSState
			selectedID = s.SelectedCandidatePairID
		}
	}
	local, remote := map[string]bool{}, map[string]bool{}
	succeeded := false
	for _, s := range r {
		p, ok := s.(webrtc.ICECandidatePairStats)
		if !ok {
			continue
		}
		d.Pairs++
		d.RequestsSent += p.RequestsSent
		d.RequestsReceived += p.RequestsReceived
		d.ResponsesRecv += p.ResponsesReceived
		succeeded = succeeded || p.State == webrtc.StatsICECandidatePairStateSucceeded
		if t := cands[p.LocalCandidateID]; t != "" {
			local[t] = true
		}
		if t := cands[p.RemoteCandidateID]; t != "" {
			remote[t] = true
		}
		if p.ID == selectedID || (selectedID == "" && p.Nominated) {
			d.Selected = cands[p.LocalCandidateID] + "/" + cands[p.RemoteCandidateID]
		}
	}
	d.LocalTypes, d.RemoteTypes = keys(local), keys(remote)
	iceUp := succeeded || d.ICEState == webrtc.ICETransportStateConnected || d.ICEState == webrtc.ICETransportStateCompleted
	switch {
	case rtpPackets > 0:
		d.Cause = CauseMediaStopped
	case d.DTLSState == webrtc.DTLSTransportStateConnected:
		d.Cause = CauseNoMediaFromPeer
	case iceUp:
		d.Cause = CauseDTLSFailed
	case d.Pairs == 0:
		d.Cause = CauseNoRemoteCandidates
	case d.RequestsReceived == 0 && d.ResponsesRecv == 0:
		d.Cause = CauseNothingFromPeer
	case d.ResponsesRecv == 0:
		d.Cause = CauseChecksUnanswered
	default:
		d.Cause = CauseICEFailed
	}
	return d
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Metrics counts diagnosed failures.
type Metrics struct {
	Failures *prometheus.CounterVec // callgw_media_failures_total{leg,cause}
}

// NewMetrics registers the series on reg (nil: not registered), every
// leg × cause at zero.
func NewMetrics(reg prometheus.Registerer, legs ...string) *Metrics {
	m := &Metrics{Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "media_failures_total",
		Help: "Media legs that carried no media (failed or went silent), by leg and diagnosed cause."}, []string{"leg", "cause"})}
	for _, l := range legs {
		for _, c := range Causes() {
			m.Failures.WithLabelValues(l, c.String())
		}
	}
	if reg != nil {
		reg.MustRegister(m.Failures)
	}
	return m
}

// Observe counts one diagnosed failure of leg.
func (m *Metrics) Observe(leg string, d Diagnosis) {
	m.Failures.WithLabelValues(leg, d.Cause.String()).Inc()
}
