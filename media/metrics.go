package media

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus series of the media engine. Labels are bounded:
// direction (to_agent, to_whatsapp), leg (whatsapp, agent), state (LegState).
type Metrics struct {
	BridgesCreated   prometheus.Counter
	PacketsForwarded *prometheus.CounterVec // direction
	BytesForwarded   *prometheus.CounterVec // direction
	PacketsDropped   *prometheus.CounterVec // direction; read with no leg to forward to
	PacketsLost      *prometheus.CounterVec // leg; from receive sequence gaps
	SilencePackets   prometheus.Counter
	DTMFEvents       *prometheus.CounterVec // direction (from_whatsapp, to_whatsapp)
	MediaTimeouts    prometheus.Counter
	LegStates        *prometheus.CounterVec // leg, state
	// Jitter and RTT are observed once per RTCP report interval per
	// connected leg by the pacer (never per packet).
	Jitter *prometheus.HistogramVec // leg; RFC 3550 interarrival jitter of the stream we receive
	RTT    *prometheus.HistogramVec // leg; from the remote's reception reports about our stream

	// Prompts, hold and the recording tap.
	PromptPackets prometheus.Counter
	Playbacks     prometheus.Counter
	Holds         prometheus.Counter
	RecordDropped *prometheus.CounterVec // direction (user, business): tap ring full

	// resolved children: no label lookup on the packet path
	fwdToAgent, fwdToWA     prometheus.Counter
	bytesToAgent, bytesToWA prometheus.Counter
	dropToAgent, dropToWA   prometheus.Counter
	lostWA, lostAgent       prometheus.Counter
	dtmfFromWA, dtmfToWA    prometheus.Counter
	jitter, rtt             [2]prometheus.Observer // by legKind
	promptPackets           prometheus.Counter
	playbacks, holds        prometheus.Counter
	recDropUser, recDropBiz prometheus.Counter
}

// Histogram buckets suited to voice, in seconds.
var (
	jitterBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2}
	rttBuckets    = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2}
)

// NewMetrics builds the media series and registers them on reg (nil: not
// registered). The callgw_media_bridges_active gauge is registered by
// NewEngine, which owns the live count.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "callgw", "media"
	m := &Metrics{
		BridgesCreated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bridges_created_total", Help: "Bridges created."}),
		PacketsForwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "packets_forwarded_total", Help: "RTP packets forwarded between legs."}, []string{"direction"}),
		BytesForwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "payload_bytes_forwarded_total", Help: "RTP payload bytes forwarded between legs."}, []string{"direction"}),
		PacketsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "packets_dropped_total", Help: "RTP packets read but not forwarded (no peer leg yet, DTMF in progress)."}, []string{"direction"}),
		PacketsLost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "packets_lost_total", Help: "RTP packets missing in received sequence numbers."}, []string{"leg"}),
		SilencePackets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "silence_packets_total", Help: "Opus silence frames sent toward WhatsApp."}),
		DTMFEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dtmf_events_total", Help: "RFC 4733 DTMF digits received from or sent to WhatsApp."}, []string{"direction"}),
		MediaTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "timeouts_total", Help: "WhatsApp legs that stopped receiving RTP for the media timeout."}),
		LegStates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "leg_state_changes_total", Help: "Leg connection state changes."}, []string{"leg", "state"}),
		Jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "jitter_seconds", Help: "Interarrival jitter of the received stream, one sample per leg per RTCP interval.",
			Buckets: jitterBuckets}, []string{"leg"}),
		RTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "rtt_seconds", Help: "Round-trip time from RTCP reception reports, one sample per leg per RTCP interval.",
			Buckets: rttBuckets}, []string{"leg"}),
		PromptPackets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "prompt_packets_total", Help: "Prompt (and hold music) Opus packets sent toward WhatsApp."}),
		Playbacks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "playbacks_total", Help: "Prompt playbacks started (Play)."}),
		Holds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "holds_total", Help: "Calls put on hold."}),
		RecordDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "recording_packets_dropped_total", Help: "Packets the recording tap dropped because its ring was full (slow sink)."},
			[]string{"direction"}),
	}
	m.promptPackets, m.playbacks, m.holds = m.PromptPackets, m.Playbacks, m.Holds
	m.recDropUser = m.RecordDropped.WithLabelValues("user")
	m.recDropBiz = m.RecordDropped.WithLabelValues("business")
	m.fwdToAgent = m.PacketsForwarded.WithLabelValues("to_agent")
	m.fwdToWA = m.PacketsForwarded.WithLabelValues("to_whatsapp")
	m.bytesToAgent = m.BytesForwarded.WithLabelValues("to_agent")
	m.bytesToWA = m.BytesForwarded.WithLabelValues("to_whatsapp")
	m.dropToAgent = m.PacketsDropped.WithLabelValues("to_agent")
	m.dropToWA = m.PacketsDropped.WithLabelValues("to_whatsapp")
	m.lostWA = m.PacketsLost.WithLabelValues(legWhatsApp.String())
	m.lostAgent = m.PacketsLost.WithLabelValues(legAgent.String())
	m.dtmfFromWA = m.DTMFEvents.WithLabelValues("from_whatsapp")
	m.dtmfToWA = m.DTMFEvents.WithLabelValues("to_whatsapp")
	for _, k := range []legKind{legWhatsApp, legAgent} {
		m.jitter[k] = m.Jitter.WithLabelValues(k.String())
		m.rtt[k] = m.RTT.WithLabelValues(k.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.BridgesCreated, m.PacketsForwarded, m.BytesForwarded,
			m.PacketsDropped, m.PacketsLost, m.SilencePackets, m.DTMFEvents, m.MediaTimeouts, m.LegStates,
			m.Jitter, m.RTT, m.PromptPackets, m.Playbacks, m.Holds, m.RecordDropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("media: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func registerActiveGauge(reg prometheus.Registerer, active func() float64) error {
	if reg == nil {
		return nil
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Subsystem: "media",
		Name: "bridges_active", Help: "Bridges currently open."}, active)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("media: register metrics: %w", err)
	}
	return nil
}
