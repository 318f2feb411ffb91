package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// markerLen is the trailer carried in the Opus padding of every packet a
// peer plays: send time (ns since the run's epoch) and a per-stream counter.
const markerLen = 12

// mark turns a one-frame Opus packet (TOC code 0) into an equivalent code 3
// packet (one frame, CBR) whose Opus padding carries the marker (RFC 6716
// 3.2.5: decoders ignore padding). ok is false for other packet codes.
func mark(dst, frame []byte, sentNS int64, n uint32) ([]byte, bool) {
	if len(frame) == 0 || frame[0]&3 != 0 {
		return nil, false
	}
	dst = append(dst[:0], frame[0]|3, 0x41, markerLen) // code 3; p=1, M=1; padding length
	dst = append(dst, frame[1:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(sentNS))
	dst = binary.BigEndian.AppendUint32(dst, n)
	return dst, true
}

// unmark reads the marker of a packet built by mark.
func unmark(p []byte) (sentNS int64, n uint32, ok bool) {
	if len(p) < 3+markerLen || p[0]&3 != 3 || p[1] != 0x41 || p[2] != markerLen {
		return 0, 0, false
	}
	t := p[len(p)-markerLen:]
	return int64(binary.BigEndian.Uint64(t)), binary.BigEndian.Uint32(t[8:]), true
}

func isSilence(p []byte) bool { return len(p) == 3 && p[0] == 0xf8 && p[1] == 0xff && p[2] == 0xfe }

func isLoopback4(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil }

// peerAPI builds the Pion API of a simulated endpoint: Opus 111 (with
// fmtp), telephone-event 126, RTCP SR/RR interceptors like a real peer,
// loopback UDP4 only; lite for the Meta-like peer.
func peerAPI(lite bool, opusFmtp string) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := registerPeerCodecs(me, opusFmtp); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetLite(lite)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(isLoopback4)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

// registerPeerCodecs registers what a simulated endpoint speaks: Opus 111
// (with fmtp) and telephone-event 126.
func registerPeerCodecs(me *webrtc.MediaEngine, opusFmtp string) error {
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: opusFmtp},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("register opus: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000},
		PayloadType:        126,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("register telephone-event: %w", err)
	}
	return nil
}

// stream counts what one peer receives of the other side's marked audio.
type stream struct {
	mu        sync.Mutex
	received  uint64
	silence   uint64
	gaps      uint64 // counter jumps (packets missing in sequence)
	reordered uint64
	have      bool
	last      uint32
	lat       []time.Duration
	win       [2]int // lat[win[0]:win[1]]: the measured window's (markWindow)
}

// markWindow records where the measured window starts (i 0) or ends (i 1)
// in the stream's latencies.
func (s *stream) markWindow(i int) {
	s.mu.Lock()
	s.win[i] = len(s.lat)
	s.mu.Unlock()
}

func (s *stream) got(now time.Duration, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if isSilence(payload) {
		s.silence++
		return
	}
	sent, n, ok := unmark(payload)
	if !ok {
		return
	}
	s.received++
	s.lat = append(s.lat, now-time.Duration(sent))
	switch {
	case !s.have:
		s.have = true
	case int32(n-s.last) > 1:
		s.gaps += uint64(n - s.last - 1)
	case int32(n-s.last) <= 0:
		s.reordered++
		return
	}
	s.last = n
}

// endpoint is one simulated peer (Meta-like or browser-like).
type endpoint struct {
	pc        *webrtc.PeerConnection
	track     *webrtc.TrackLocalStaticRTP
	connected chan struct{}
	rx        stream
	sent      atomic.Uint64
	onRx      func()
	// light: the endpoint's media leaves Pion once connected (-peers light)
	light    *lightPeer
	lightErr error

	mu      sync.Mutex
	pending []webrtc.ICECandidateInit
}

// newEndpoint makes an endpoint on api; lp (nil: a stock Pion endpoint)
// carries its media once it is connected.
func newEndpoint(api *webrtc.API, lp *lightPeer, epoch time.Time, onRx func()) (*endpoint, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, fmt.Errorf("new peer: %w", err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "load")
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("new track: %w", err)
	}
	p := &endpoint{pc: pc, track: track, connected: make(chan struct{}), onRx: onRx, light: lp}
	if lp != nil {
		lp.ep = p
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() {
				if lp != nil {
					// before anything is sent: every SRTP packet of ours
					// uses the one context
					p.lightErr = lp.goLight(pc)
				}
				close(p.connected)
			})
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		var h rtp.Header
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			hl, err := h.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			p.rx.got(time.Since(epoch), buf[hl:n])
			onRx()
		}
	})
	return p, nil
}

// addCandidate applies a trickled candidate, buffering it until the remote
// description is set.
func (p *endpoint) addCandidate(c webrtc.ICECandidateInit) {
	p.mu.Lock()
	if p.pc.RemoteDescription() == nil {
		p.pending = append(p.pending, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = p.pc.AddICECandidate(c)
}

func (p *endpoint) setRemote(d webrtc.SessionDescription) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.pc.SetRemoteDescription(d); err != nil {
		return fmt.Errorf("set remote %s: %w", d.Type, err)
	}
	for _, c := range p.pending {
		_ = p.pc.AddICECandidate(c)
	}
	p.pending = nil
	return nil
}

// offer adds the send track with mid "audio" (as Meta does) and returns a
// complete offer.
func (p *endpoint) offer(ctx context.Context) (string, error) {
	tr, err := p.pc.AddTransceiverFromTrack(p.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return "", fmt.Errorf("add transceiver: %w", err)
	}
	if err := tr.SetMid("audio"); err != nil {
		return "", fmt.Errorf("set mid: %w", err)
	}
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("create offer: %w", err)
	}
	return p.setLocal(ctx, o, true)
}

// answer applies offer and returns the answer (gathered when wait is true;
// otherwise candidates trickle through OnICECandidate).
func (p *endpoint) answer(ctx context.Context, offer string, wait bool) (string, error) {
	if err := p.setRemote(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	if _, err := p.pc.AddTrack(p.track); err != nil {
		return "", fmt.Errorf("add track: %w", err)
	}
	a, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	return p.setLocal(ctx, a, wait)
}

func (p *endpoint) setLocal(ctx context.Context, d webrtc.SessionDescription, wait bool) (string, error) {
	g := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("set local %s: %w", d.Type, err)
	}
	if wait {
		select {
		case <-g:
		case <-ctx.Done():
			return "", fmt.Errorf("ice gathering: %w", ctx.Err())
		}
	}
	return p.pc.LocalDescription().SDP, nil
}

func (p *endpoint) waitConnected(ctx context.Context) error {
	select {
	case <-p.connected:
		return p.lightErr
	case <-ctx.Done():
		return fmt.Errorf("peer not connected: %w", ctx.Err())
	}
}

// play sends the Opus frames (looping), marked, every 20 ms until stop.
func (p *endpoint) play(stop <-chan struct{}, frames [][]byte, epoch time.Time) {
	if p.light != nil { // the light player sends
		p.light.n.startPlaying(p.light)
		<-stop
		p.light.n.stopPlaying(p.light)
		return
	}
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 1, Timestamp: 960}}
	buf := make([]byte, 0, 1500)
	var n uint32
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		payload, ok := mark(buf, frames[i%len(frames)], int64(time.Since(epoch)), n)
		if !ok {
			continue
		}
		pkt.Payload = payload
		if err := p.track.WriteRTP(&pkt); err != nil && !errors.Is(err, context.Canceled) {
			return
		}
		p.sent.Add(1)
		n++
		pkt.SequenceNumber++
		pkt.Timestamp += 960
	}
}

func (p *endpoint) close() error {
	err := p.pc.GracefulClose()
	if p.light != nil {
		p.light.release()
	}
	return err
}
