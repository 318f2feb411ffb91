package media

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/callgw/callgw/internal/mediadiag"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	mimeTelephoneEvent = "audio/telephone-event"
	// Payload types we offer (Meta uses the same); answers follow the offer.
	ptOpus           = 111
	ptTelephoneEvent = 126
	// frameDuration is the Opus frame length and pacer period.
	frameDuration = 20 * time.Millisecond
	// opusFrameTicks is one 20 ms frame in 48 kHz RTP clock units.
	opusFrameTicks = 960
	// rtcpInterval is how often each leg sends an SR/RR.
	rtcpInterval = time.Second
	// whatsappOfferOpusFmtp are the Opus parameters offered to Meta. Only
	// keys whose values Meta's answer repeats may appear: Pion drops a codec
	// whose fmtp only partially matches when another codec (telephone-event)
	// matches exactly, and Meta answers minptime=20.
	whatsappOfferOpusFmtp = "useinbandfec=1"
	// agentOfferOpusFmtp are the Opus parameters offered to browsers.
	agentOfferOpusFmtp = "minptime=10;useinbandfec=1"
	// certRenewBefore renews the shared DTLS certificate this long before expiry.
	certRenewBefore = 48 * time.Hour
)

// Engine owns what all bridges share: the two Pion APIs (WhatsApp-facing
// and agent-facing), the optional single-port ICE UDP mux, the DTLS
// certificate and the pacer goroutine. Create one per process.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	diag    *mediadiag.Metrics // callgw_media_failures_total{leg,cause}
	waAPI   apiTemplate        // answers Meta's offers
	waOffer apiTemplate        // offers to Meta (business-initiated)
	agAPI   apiTemplate
	mux     ice.UDPMux
	fast    *fastSock // PathFast: the one socket, under mux
	epoch   time.Time

	mu      sync.Mutex
	closed  bool
	bridges map[*Bridge]struct{}
	cert    webrtc.Certificate

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// NewEngine validates cfg, builds the shared Pion APIs and starts the pacer.
// reg receives the callgw_media_* series (nil: not registered).
func NewEngine(cfg Config, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "media"),
		epoch:   time.Now(),
		bridges: make(map[*Bridge]struct{}),
		done:    make(chan struct{}),
	}
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	e.metrics = m
	e.diag = mediadiag.NewMetrics(reg, "whatsapp", "agent")
	if err := registerActiveGauge(reg, func() float64 { return float64(e.ActiveBridges()) }); err != nil {
		return nil, err
	}
	if e.cert, err = newCertificate(); err != nil {
		return nil, err
	}
	if cfg.UDPPort > 0 || cfg.PacketPath == PathFast {
		if e.mux, err = e.newMux(); err != nil {
			return nil, err
		}
	}
	// Answering Meta, Opus is registered without fmtp so that Pion matches
	// whatever parameters Meta offers exactly and echoes Meta's fmtp in the
	// answer (a partial fmtp match would drop Opus and keep only
	// telephone-event). Offering, we state ours.
	if e.waAPI, err = e.newAPI(true, ""); err == nil {
		if e.waOffer, err = e.newAPI(true, whatsappOfferOpusFmtp); err == nil {
			e.agAPI, err = e.newAPI(false, agentOfferOpusFmtp)
		}
	}
	if err != nil {
		_ = e.closeMux()
		return nil, err
	}
	e.wg.Add(1)
	go e.runPacer()
	return e, nil
}

func newCertificate() (webrtc.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("media: generate ecdsa key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("media: generate certificate: %w", err)
	}
	return *cert, nil
}

func isLoopback4(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil }

func (e *Engine) newMux() (ice.UDPMux, error) {
	logger := pionLoggerFactory{e.log}.NewLogger("udpmux")
	if e.cfg.PacketPath == PathFast {
		addr := &net.UDPAddr{Port: e.cfg.UDPPort} // all addresses, IPv4 and IPv6
		if e.cfg.LoopbackOnly {
			addr.IP = net.IPv4(127, 0, 0, 1)
		}
		conn, err := net.ListenUDP("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("media: listen udp port %d: %w", e.cfg.UDPPort, err)
		}
		_ = conn.SetReadBuffer(e.cfg.SocketBuffer)
		_ = conn.SetWriteBuffer(e.cfg.SocketBuffer)
		if err := SetDontFragment(conn); err != nil {
			e.log.Debug("fast path socket: no DF bit", "err", err)
		}
		e.fast = newFastSock(conn, e.cfg.ReceiveMTU, e.cfg.MeasureForwardDelay)
		return webrtc.NewICEUDPMux(logger, e.fast), nil
	}
	if e.cfg.LoopbackOnly {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: e.cfg.UDPPort})
		if err != nil {
			return nil, fmt.Errorf("media: listen udp port %d: %w", e.cfg.UDPPort, err)
		}
		// One socket carries every call: a small kernel buffer overflows in
		// bursts (call set-up) long before the CPU is busy.
		_ = conn.SetReadBuffer(e.cfg.SocketBuffer)
		_ = conn.SetWriteBuffer(e.cfg.SocketBuffer)
		return webrtc.NewICEUDPMux(logger, conn), nil
	}
	mux, err := ice.NewMultiUDPMuxFromPort(e.cfg.UDPPort, ice.UDPMuxFromPortWithLogger(logger),
		ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
		ice.UDPMuxFromPortWithReadBufferSize(e.cfg.SocketBuffer),
		ice.UDPMuxFromPortWithWriteBufferSize(e.cfg.SocketBuffer))
	if err != nil {
		return nil, fmt.Errorf("media: listen udp port %d: %w", e.cfg.UDPPort, err)
	}
	return mux, nil
}

func (e *Engine) closeMux() error {
	if e.mux == nil {
		return nil
	}
	return e.mux.Close()
}

// apiTemplate is what each leg's Pion API is built from. Every
// PeerConnection gets its own (cheap) API so that its
// SettingEngine.BufferFactory can hand the leg's RTCP straight to the
// bridge (see legBuffers).
type apiTemplate struct {
	me *webrtc.MediaEngine
	se webrtc.SettingEngine
}

// api builds the Pion API of one leg: the template plus the leg's buffers.
func (t apiTemplate) api(buffers func(packetio.BufferPacketType, uint32) io.ReadWriteCloser) *webrtc.API {
	se := t.se
	se.BufferFactory = buffers
	return webrtc.NewAPI(webrtc.WithMediaEngine(t.me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// newAPI builds a Pion API template: Opus + telephone-event only, no
// interceptors (we handle RTCP and send SR/RR ourselves from the pacer, so
// the packet path has no per-packet interceptor work), no mDNS, UDP only.
func (e *Engine) newAPI(whatsapp bool, opusFmtp string) (apiTemplate, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: opusFmtp},
		PayloadType: ptOpus,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return apiTemplate{}, fmt.Errorf("media: register opus: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeTelephoneEvent, ClockRate: 8000,
			SDPFmtpLine: "0-15"},
		PayloadType: ptTelephoneEvent,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return apiTemplate{}, fmt.Errorf("media: register telephone-event: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionLoggerFactory{e.log}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(e.cfg.ICEDisconnectedTimeout, e.cfg.ICEFailedTimeout, e.cfg.ICEKeepalive)
	se.SetReceiveMTU(uint(e.cfg.ReceiveMTU))
	se.DisableActiveTCP(true)
	if e.cfg.LoopbackOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(isLoopback4)
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if len(e.cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(e.cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if e.mux != nil {
		se.SetICEUDPMux(e.mux)
	} else if e.cfg.PortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(e.cfg.PortMin, e.cfg.PortMax); err != nil {
			return apiTemplate{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if whatsapp {
		// Meta is ICE-lite: answering, Pion would pick DTLS passive; Meta
		// needs us to be the DTLS client (a=setup:active).
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
			return apiTemplate{}, fmt.Errorf("media: answering dtls role: %w", err)
		}
	}
	return apiTemplate{me: me, se: se}, nil
}

// certificate returns the shared DTLS certificate, renewing it before expiry.
func (e *Engine) certificate() (webrtc.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Until(e.cert.Expires()) < certRenewBefore {
		c, err := newCertificate()
		if err != nil {
			return webrtc.Certificate{}, err
		}
		e.cert = c
	}
	return e.cert, nil
}

// ActiveBridges returns the number of open bridges.
func (e *Engine) ActiveBridges() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.bridges)
}

// NewBridge creates an empty bridge for call id (used in logs only). The
// legs are created by AnswerWhatsApp/OfferWhatsApp and OfferAgent.
func (e *Engine) NewBridge(id string, ev Events) (*Bridge, error) {
	b := newBridge(e, id, ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	e.bridges[b] = struct{}{}
	e.metrics.BridgesCreated.Inc()
	return b, nil
}

func (e *Engine) remove(b *Bridge) {
	e.mu.Lock()
	delete(e.bridges, b)
	e.mu.Unlock()
}

// runPacer is the one goroutine per Engine that drives every bridge's
// timers: silence or DTMF toward WhatsApp every 20 ms, RTCP reports, and
// the media watchdog.
func (e *Engine) runPacer() {
	defer e.wg.Done()
	t := time.NewTicker(frameDuration)
	defer t.Stop()
	var list []*Bridge
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.mu.Lock()
		for b := range e.bridges {
			list = append(list, b)
		}
		e.mu.Unlock()
		now := time.Now()
		if e.fast != nil && e.fast.bio != nil {
			// fast path: this tick's silence, DTMF and RTCP leave in
			// sendmmsg batches
			e.fast.setBatching(true)
		}
		for _, b := range list {
			b.tick(now)
		}
		if e.fast != nil && e.fast.bio != nil {
			e.fast.setBatching(false)
		}
		clear(list)
		list = list[:0]
	}
}

// Close closes every bridge, stops the pacer and releases the UDP port.
// It is idempotent.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		list := make([]*Bridge, 0, len(e.bridges))
		for b := range e.bridges {
			list = append(list, b)
		}
		e.mu.Unlock()
		var errs []error
		for _, b := range list {
			errs = append(errs, b.Close())
		}
		close(e.done)
		e.wg.Wait()
		errs = append(errs, e.closeMux())
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// arrivalUS is microseconds since the engine epoch (monotonic).
func (e *Engine) arrivalUS(now time.Time) int64 { return now.Sub(e.epoch).Microseconds() }
