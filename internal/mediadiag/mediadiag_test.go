package mediadiag_test

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/callgw/callgw/internal/mediadiag"
)

// stats builds a report: pairs of (local type, remote type, state,
// requests sent, received, responses received).
type pair struct {
	local, remote        webrtc.ICECandidateType
	state                webrtc.StatsICECandidatePairState
	sent, recv, answered uint64
}

func report(ice webrtc.ICETransportState, dtls webrtc.DTLSTransportState, pairs ...pair) webrtc.StatsReport {
	r := webrtc.StatsReport{"t": webrtc.TransportStats{ID: "t", Type: webrtc.StatsTypeTransport, ICEState: ice, DTLSState: dtls}}
	for i, p := range pairs {
		l, rm := "l"+string(rune('0'+i)), "r"+string(rune('0'+i))
		r[l] = webrtc.ICECandidateStats{ID: l, Type: webrtc.StatsTypeLocalCandidate, CandidateType: p.local}
		r[rm] = webrtc.ICECandidateStats{ID: rm, Type: webrtc.StatsTypeRemoteCandidate, CandidateType: p.remote}
		id := "p" + string(rune('0'+i))
		r[id] = webrtc.ICECandidatePairStats{ID: id, Type: webrtc.StatsTypeCandidatePair, LocalCandidateID: l,
			RemoteCandidateID: rm, State: p.state, RequestsSent: p.sent, RequestsReceived: p.recv, ResponsesReceived: p.answered}
	}
	return r
}

func TestDiagnoseTable(t *testing.T) {
	host, srflx, relay := webrtc.ICECandidateTypeHost, webrtc.ICECandidateTypeSrflx, webrtc.ICECandidateTypeRelay
	inProgress, failed, ok := webrtc.StatsICECandidatePairStateInProgress, webrtc.StatsICECandidatePairStateFailed, webrtc.StatsICECandidatePairStateSucceeded
	tests := []struct {
		name string
		r    webrtc.StatsReport
		rtp  uint64
		want mediadiag.Cause
	}{
		{"no pairs", report(webrtc.ICETransportStateChecking, webrtc.DTLSTransportStateNew), 0, mediadiag.CauseNoRemoteCandidates},
		{"checks into the void", report(webrtc.ICETransportStateFailed, webrtc.DTLSTransportStateNew,
			pair{host, host, failed, 12, 0, 0}, pair{relay, srflx, failed, 9, 0, 0}), 0, mediadiag.CauseNothingFromPeer},
		{"peer's checks arrive, ours unanswered", report(webrtc.ICETransportStateFailed, webrtc.DTLSTransportStateNew,
			pair{host, srflx, failed, 12, 7, 0}), 0, mediadiag.CauseChecksUnanswered},
		{"both ways, no success", report(webrtc.ICETransportStateFailed, webrtc.DTLSTransportStateNew,
			pair{host, srflx, failed, 12, 7, 3}), 0, mediadiag.CauseICEFailed},
		{"ice up, dtls failed", report(webrtc.ICETransportStateConnected, webrtc.DTLSTransportStateFailed,
			pair{host, host, ok, 3, 3, 3}), 0, mediadiag.CauseDTLSFailed},
		{"transport up, no rtp", report(webrtc.ICETransportStateConnected, webrtc.DTLSTransportStateConnected,
			pair{host, host, ok, 3, 3, 3}), 0, mediadiag.CauseNoMediaFromPeer},
		{"rtp then silence", report(webrtc.ICETransportStateDisconnected, webrtc.DTLSTransportStateConnected,
			pair{host, host, inProgress, 3, 3, 3}), 250, mediadiag.CauseMediaStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mediadiag.Diagnose(tt.r, tt.rtp)
			if d.Cause != tt.want {
				t.Fatalf("cause %v, want %v (%v)", d.Cause, tt.want, d)
			}
		})
	}
	d := mediadiag.Diagnose(report(webrtc.ICETransportStateFailed, webrtc.DTLSTransportStateNew,
		pair{host, host, failed, 2, 0, 0}, pair{relay, srflx, failed, 3, 0, 0}), 0)
	if strings.Join(d.LocalTypes, ",") != "host,relay" || strings.Join(d.RemoteTypes, ",") != "host,srflx" || d.RequestsSent != 5 {
		t.Fatalf("diagnosis %+v", d)
	}
}

func TestCauseString(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range mediadiag.Causes() {
		if seen[c.String()] {
			t.Fatalf("duplicate cause name %q", c)
		}
		seen[c.String()] = true
	}
	if mediadiag.Cause(-1).String() != "unknown" || mediadiag.Cause(99).String() != "unknown" {
		t.Fatal("out of range causes must say unknown")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := mediadiag.NewMetrics(reg, "whatsapp", "agent")
	m.Observe("agent", mediadiag.Diagnosis{Cause: mediadiag.CauseNothingFromPeer})
	if got := testutil.ToFloat64(m.Failures.WithLabelValues("agent", "nothing_from_peer")); got != 1 {
		t.Fatalf("counter %v", got)
	}
	if n := testutil.CollectAndCount(m.Failures); n != 2*len(mediadiag.Causes()) {
		t.Fatalf("%d series, want every leg x cause", n)
	}
}

// Real Pion peers on loopback, each failure produced for real.

func newPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICETimeouts(time.Second, 2*time.Second, 200*time.Millisecond)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	return pc
}

var candidateLine = regexp.MustCompile(`(?m)^a=(candidate|end-of-candidates).*\r?\n`)

func strip(sdp string) string { return candidateLine.ReplaceAllString(sdp, "") }

// negotiate runs offer/answer between a and b with full gathering; the
// edit functions change what each side receives.
func negotiate(t *testing.T, a, b *webrtc.PeerConnection, toB, toA func(string) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	local := func(pc *webrtc.PeerConnection, d webrtc.SessionDescription) string {
		done := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(d); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("gathering did not complete")
		}
		return pc.LocalDescription().SDP
	}
	off, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	offer := local(a, off)
	if err := b.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: toB(offer)}); err != nil {
		t.Fatal(err)
	}
	ans, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	answer := local(b, ans)
	if err := a.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: toA(answer)}); err != nil {
		t.Fatal(err)
	}
}

func same(s string) string { return s }

// waitState waits for pc to reach one of the states.
func waitState(t *testing.T, pc *webrtc.PeerConnection, states ...webrtc.PeerConnectionState) {
	t.Helper()
	ch := make(chan webrtc.PeerConnectionState, 16)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { ch <- s })
	deadline := time.After(15 * time.Second)
	for {
		for _, s := range states {
			if pc.ConnectionState() == s {
				return
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("peer connection is %s, want %v", pc.ConnectionState(), states)
		}
	}
}

func deadPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestDiagnoseRealPeers(t *testing.T) {
	// A DTLS failure (e.g. a fingerprint mismatch) is not produced here:
	// Pion closes the whole PeerConnection then and its stats are gone, so
	// the media hook diagnoses the last snapshot (see README); the table
	// test covers the classification.
	tests := []struct {
		name string
		run  func(t *testing.T, a, b *webrtc.PeerConnection) webrtc.StatsReport
		want mediadiag.Cause
	}{
		{"no candidates either way", func(t *testing.T, a, b *webrtc.PeerConnection) webrtc.StatsReport {
			negotiate(t, a, b, strip, strip)
			return a.GetStats()
		}, mediadiag.CauseNoRemoteCandidates},
		{"the peer's address is wrong and it never sends", func(t *testing.T, a, b *webrtc.PeerConnection) webrtc.StatsReport {
			negotiate(t, a, b, strip, strip)
			if err := a.AddICECandidate(webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 " +
				strconv.Itoa(deadPort(t)) + " typ host"}); err != nil {
				t.Fatal(err)
			}
			return waitStats(t, a, func(d mediadiag.Diagnosis) bool { return d.RequestsSent >= 3 })
		}, mediadiag.CauseNothingFromPeer},
		{"connected, the peer sends nothing", func(t *testing.T, a, b *webrtc.PeerConnection) webrtc.StatsReport {
			negotiate(t, a, b, same, same)
			waitState(t, a, webrtc.PeerConnectionStateConnected)
			return a.GetStats()
		}, mediadiag.CauseNoMediaFromPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newPC(t), newPC(t)
			d := mediadiag.Diagnose(tt.run(t, a, b), 0)
			t.Log(d)
			if d.Cause != tt.want {
				t.Fatalf("cause %v, want %v (%v)", d.Cause, tt.want, d)
			}
		})
	}
}

// waitStats polls pc's stats until cond holds for their diagnosis (stats
// have no change event) and returns them.
func waitStats(t *testing.T, pc *webrtc.PeerConnection, cond func(mediadiag.Diagnosis) bool) webrtc.StatsReport {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r := pc.GetStats()
		if cond(mediadiag.Diagnose(r, 0)) {
			return r
		}
		select {
		case <-deadline:
			t.Fatalf("stats never got there: %v", mediadiag.Diagnose(r, 0))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
