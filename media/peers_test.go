package media

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/oggopus"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const metaOpusFmtp = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;useinbandfec=1"

func loadOpus(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open("../testdata/audio/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := oggopus.ReadPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	return pkts
}

// rxPacket is one packet a test peer received.
type rxPacket struct {
	at      time.Time
	pt      uint8
	ssrc    uint32
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

// peer is a test endpoint: the "Meta-like" ICE-lite offerer or the
// "browser-like" agent answerer. Both are real Pion peers over loopback.
type peer struct {
	t     testing.TB
	pc    *webrtc.PeerConnection
	track *outTrack

	mu        sync.Mutex
	got       []rxPacket
	notify    chan struct{}
	connected chan struct{}
	remoteSet bool
	pending   []webrtc.ICECandidateInit
	discard   atomic.Bool  // benchmarks: count only, keep nothing
	count     atomic.Int64 // RTP packets received
	rtcpIn    atomic.Int64 // RTCP packets received (any stream)

	sendMu  sync.Mutex
	seq     uint16
	ts      uint32
	sentLog []sentPacket
	stop    chan struct{}
	wg      sync.WaitGroup
}

type sentPacket struct {
	seq uint16
	at  time.Time
}

func peerAPI(t testing.TB, lite bool, opusFmtp string, reports bool) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: opusFmtp},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeTelephoneEvent, ClockRate: 8000},
		PayloadType:        126,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if reports { // SR/RR like a real peer; off for allocation benchmarks
		if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	if !reports {
		// benchmarks replay the same packets: no replay errors (and their
		// allocations) in the receiving test peer
		se.DisableSRTPReplayProtection(true)
	}
	se.SetLite(lite)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(isLoopback4)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
}

func newPeer(t testing.TB, api *webrtc.API) *peer {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, pc: pc, track: newOutTrack("audio", "peer"), notify: make(chan struct{}, 1),
		connected: make(chan struct{}), stop: make(chan struct{}), seq: 1000, ts: 5000}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(p.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		go p.drainRTCP(r)
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			p.count.Add(1)
			if p.discard.Load() {
				continue
			}
			var pkt rtp.Packet
			if err := pkt.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
				continue
			}
			p.mu.Lock()
			p.got = append(p.got, rxPacket{at: time.Now(), pt: pkt.PayloadType, ssrc: pkt.SSRC, seq: pkt.SequenceNumber,
				ts: pkt.Timestamp, marker: pkt.Marker, payload: pkt.Payload})
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(p.close)
	return p
}

// newMetaPeer builds the Meta-like peer: ICE-lite, one audio m-line with
// mid "audio", Opus 111 with Meta's fmtp, telephone-event 126, one SSRC.
func newMetaPeer(t testing.TB, reports bool) *peer {
	p := newPeer(t, peerAPI(t, true, metaOpusFmtp, reports))
	tr, err := p.pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetMid("audio"); err != nil {
		t.Fatal(err)
	}
	go p.drainRTCP(tr.Sender())
	return p
}

// newAgentPeer builds the browser-like answerer.
func newAgentPeer(t testing.TB, reports bool) *peer {
	return newPeer(t, peerAPI(t, false, "minptime=10;useinbandfec=1", reports))
}

// offer returns a complete (gathered) offer.
func (p *peer) offer(ctx context.Context) string {
	p.t.Helper()
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-g:
	case <-ctx.Done():
		p.t.Fatal("gathering timed out")
	}
	return p.pc.LocalDescription().SDP
}

// answer applies a remote offer and returns an answer; trickle is used
// when trickle is true, otherwise the answer has all candidates.
func (p *peer) answer(ctx context.Context, offer string, trickle bool) string {
	p.t.Helper()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		p.t.Fatal(err)
	}
	p.flushCandidates()
	if len(p.pc.GetSenders()) == 0 || p.pc.GetSenders()[0].Track() == nil {
		s, err := p.pc.AddTrack(p.track)
		if err != nil {
			p.t.Fatal(err)
		}
		go p.drainRTCP(s)
	}
	a, err := p.pc.CreateAnswer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(a); err != nil {
		p.t.Fatal(err)
	}
	if !trickle {
		select {
		case <-g:
		case <-ctx.Done():
			p.t.Fatal("gathering timed out")
		}
	}
	return p.pc.LocalDescription().SDP
}

func (p *peer) setAnswer(sdp string) {
	p.t.Helper()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		p.t.Fatal(err)
	}
}

// addCandidate applies a trickled candidate, buffering until the remote
// description is set.
func (p *peer) addCandidate(c webrtc.ICECandidateInit) {
	p.mu.Lock()
	if p.pc.RemoteDescription() == nil {
		p.pending = append(p.pending, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = p.pc.AddICECandidate(c)
}

func (p *peer) flushCandidates() {
	p.mu.Lock()
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, c := range pending {
		_ = p.pc.AddICECandidate(c)
	}
}

func (p *peer) waitConnected(ctx context.Context) {
	p.t.Helper()
	select {
	case <-p.connected:
	case <-ctx.Done():
		p.t.Fatal("peer did not connect")
	}
}

// waitFor waits until cond holds over the received packets.
func (p *peer) waitFor(ctx context.Context, what string, cond func(got []rxPacket) bool) {
	p.t.Helper()
	for {
		p.mu.Lock()
		ok := cond(p.got)
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-p.notify:
		case <-ctx.Done():
			p.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (p *peer) received() []rxPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rxPacket(nil), p.got...)
}

// writePacket sends one RTP packet with the next seq (ts advances by tsStep).
func (p *peer) writePacket(pt uint8, marker bool, tsStep uint32, payload []byte) (uint16, bool) {
	bd := p.track.b.Load()
	if bd == nil {
		return 0, false
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	p.seq++
	p.ts += tsStep
	h := rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: bd.ssrc}
	if _, err := bd.w.WriteRTP(&h, payload); err != nil {
		return 0, false
	}
	p.sentLog = append(p.sentLog, sentPacket{seq: p.seq, at: time.Now()})
	return p.seq, true
}

// play sends pkts (looping) every 20 ms until stopped; sent receives each
// payload index in send order.
func (p *peer) play(pkts [][]byte, sent *[]int, mu *sync.Mutex) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tk.C:
			}
			idx := i % len(pkts)
			if _, ok := p.writePacket(111, false, 960, pkts[idx]); ok && sent != nil {
				mu.Lock()
				*sent = append(*sent, idx)
				mu.Unlock()
			}
		}
	}()
}

func (p *peer) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
	_ = p.pc.GracefulClose()
}

type rtcpReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// drainRTCP reads RTCP so the peer's report interceptors see our SRs/RRs,
// counting the packets.
func (p *peer) drainRTCP(r rtcpReader) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.Read(buf); err != nil {
			return
		}
		p.rtcpIn.Add(1)
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
}

func isSilence(b []byte) bool { return len(b) == 3 && b[0] == 0xf8 && b[1] == 0xff && b[2] == 0xfe }

func hasLine(sdp, line string) bool {
	for _, l := range strings.Split(sdp, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
