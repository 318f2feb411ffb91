package metasim

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Meta's audio profile.
const (
	opusPT = 111
	dtmfPT = 126
	// opusFmtp is the Opus fmtp of Meta's live offers (the doc samples use
	// minptime=10;useinbandfec=1).
	opusFmtp  = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1"
	audioMid  = "audio"
	frameTime = 20 // ms
)

// newUserPeer builds a WhatsApp-client-like peer: ICE-lite, host candidates,
// Opus 111 + telephone-event 126, transport-cc, one audio SSRC.
func (s *Sim) newUserPeer() (*webrtc.PeerConnection, *audioTrack, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: opusFmtp,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: opusPT,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, fmt.Errorf("%w: register opus: %w", ErrPeer, err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-15"},
		PayloadType:        dtmfPT,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, fmt.Errorf("%w: register telephone-event: %w", ErrPeer, err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, fmt.Errorf("%w: register transport-cc: %w", ErrPeer, err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, fmt.Errorf("%w: rtcp reports: %w", ErrPeer, err)
	}
	hdr, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: twcc: %w", ErrPeer, err)
	}
	ir.Add(hdr)
	fb, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: twcc: %w", ErrPeer, err)
	}
	ir.Add(fb)

	se := webrtc.SettingEngine{}
	se.SetLite(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// BIC: Meta answers a=setup:active (it is the DTLS client, the business the server).
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
		return nil, nil, fmt.Errorf("%w: dtls role: %w", ErrPeer, err)
	}
	if s.cfg.LoopbackOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	return pc, &audioTrack{}, nil
}

// gatherLocal sets the local description and waits for host candidates.
// It returns the SDP as sent on the wire (with a=ptime:20 added like Meta's).
func gatherLocal(ctx context.Context, pc *webrtc.PeerConnection, d webrtc.SessionDescription) (string, error) {
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("%w: set local description: %w", ErrPeer, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("%w: gathering: %w", ErrPeer, ctx.Err())
	}
	return addPtime(pc.LocalDescription().SDP), nil
}

// addPtime inserts a=ptime:20 after the Opus fmtp line.
func addPtime(raw string) string {
	if strings.Contains(raw, "a=ptime:") {
		return raw
	}
	key := fmt.Sprintf("a=fmtp:%d ", opusPT)
	i := strings.Index(raw, key)
	if i < 0 {
		return raw
	}
	j := strings.Index(raw[i:], "\r\n")
	if j < 0 {
		return raw
	}
	k := i + j + 2
	return raw[:k] + "a=ptime:20\r\n" + raw[k:]
}

// audioTrack is the user's one audio SSRC. It writes raw RTP so Opus and
// telephone-event share the SSRC, sequence numbers and timestamps.
type audioTrack struct {
	mu     sync.Mutex
	ws     webrtc.TrackLocalWriter
	ssrc   uint32
	opus   uint8
	dtmf   uint8
	hasDTM bool
}

// Bind implements webrtc.TrackLocal.
func (t *audioTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var opus *webrtc.RTPCodecParameters
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range ctx.CodecParameters() {
		switch strings.ToLower(c.MimeType) {
		case strings.ToLower(webrtc.MimeTypeOpus):
			if opus == nil {
				c := c
				opus = &c
			}
		case "audio/telephone-event":
			if !t.hasDTM || c.ClockRate == 8000 {
				t.dtmf, t.hasDTM = uint8(c.PayloadType), true
			}
		}
	}
	if opus == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	t.ws, t.ssrc, t.opus = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(opus.PayloadType)
	return *opus, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *audioTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.ws = nil
	t.mu.Unlock()
	return nil
}

// ID implements webrtc.TrackLocal.
func (t *audioTrack) ID() string { return "audio" }

// RID implements webrtc.TrackLocal.
func (t *audioTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *audioTrack) StreamID() string { return "whatsapp" }

// Kind implements webrtc.TrackLocal.
func (t *audioTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// write sends one packet; dtmf selects the telephone-event payload type.
// It reports false while unbound (nothing negotiated yet).
func (t *audioTrack) write(h *rtp.Header, payload []byte, dtmf bool) bool {
	t.mu.Lock()
	ws, ssrc, pt := t.ws, t.ssrc, t.opus
	if dtmf {
		if !t.hasDTM {
			t.mu.Unlock()
			return false
		}
		pt = t.dtmf
	}
	t.mu.Unlock()
	if ws == nil {
		return false
	}
	h.SSRC, h.PayloadType, h.Version = ssrc, pt, 2
	_, err := ws.WriteRTP(h, payload)
	return err == nil
}

// opusSamples returns the 48 kHz sample count of an Opus packet from its TOC
// (RFC 6716 §3.1); 960 (20 ms) when it cannot tell.
func opusSamples(p []byte) uint32 {
	if len(p) == 0 {
		return 960
	}
	toc := p[0]
	cfg := toc >> 3
	var fs uint32 // samples per frame at 48 kHz
	switch {
	case cfg < 12: // SILK 10/20/40/60 ms
		fs = []uint32{480, 960, 1920, 2880}[cfg%4]
	case cfg < 16: // hybrid 10/20
		fs = []uint32{480, 960}[cfg%2]
	default: // CELT 2.5/5/10/20
		fs = []uint32{120, 240, 480, 960}[cfg%4]
	}
	frames := uint32(1)
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 960
		}
		frames = uint32(p[1] & 0x3f)
	}
	if n := fs * frames; n > 0 {
		return n
	}
	return 960
}
