package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The fast packet path (Config.PacketPath = PathFast).
//
// Pion still does ICE (STUN, consent freshness), the DTLS handshake,
// alerts and SDP; once a leg is connected, its SRTP and SRTCP no longer go
// through Pion's per-connection goroutines and buffers. Every call shares
// one UDP socket (fastSock) that Pion's ICE UDP mux reads through: the mux's
// one read goroutine calls fastSock.ReadFromAddrPort, which peels RTP and
// RTCP from registered remote addresses off before Pion sees them, and
// handles them right there: decrypt with the leg's srtp.Context (keys from
// the DTLS exporter, as Pion derives them), parse, count, rewrite, encrypt
// for the other leg and write. One goroutine for the whole packet path, no
// hand-off, no allocation per packet. STUN, DTLS and anything from an
// unregistered address reach Pion unchanged.

// fastSock is the single UDP socket of the fast path, given to Pion's ICE
// UDP mux as its net.PacketConn.
type fastSock struct {
	*net.UDPConn
	routes atomic.Pointer[map[netip.AddrPort]*fastLeg] // copy on write
	mu     sync.Mutex                                  // serialises route changes
	buf    []byte                                      // decrypt scratch (read goroutine only)
	now    func() time.Time

	// bio batches reads and writes (Linux; nil elsewhere). While the read
	// goroutine handles a batch (batching), every send is queued and the
	// whole batch goes out in one sendmmsg.
	bio      *batchIO
	outMu    sync.Mutex
	batching bool

	// delay: Config.MeasureForwardDelay (nil: off); arrival is the kernel
	// arrival time of the datagram the read goroutine is handling, given
	// to what it sends.
	delay   *delayHist
	arrival atomic.Int64
}

func newFastSock(c *net.UDPConn, mtu int, measureDelay bool) *fastSock {
	var delay *delayHist
	if measureDelay {
		delay = new(delayHist)
	}
	s := &fastSock{UDPConn: c, buf: make([]byte, mtu+64), now: time.Now, bio: newBatchIO(c, mtu, delay)}
	if s.bio != nil && s.bio.stamped() {
		s.delay = delay
	}
	m := map[netip.AddrPort]*fastLeg{}
	s.routes.Store(&m)
	return s
}

func (s *fastSock) add(fl *fastLeg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.routes.Load()
	m := make(map[netip.AddrPort]*fastLeg, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[fl.remote] = fl
	s.routes.Store(&m)
}

func (s *fastSock) remove(fl *fastLeg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.routes.Load()
	if old[fl.remote] != fl {
		return
	}
	m := make(map[netip.AddrPort]*fastLeg, len(old))
	for k, v := range old {
		if v != fl {
			m[k] = v
		}
	}
	s.routes.Store(&m)
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter for the mux's read
// loop: it returns only what Pion must see, handling the media of fast
// legs itself.
func (s *fastSock) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	if s.bio != nil {
		return s.readBatched(b)
	}
	for {
		n, from, err := s.ReadFromUDPAddrPort(b)
		if err != nil || n < 2 || b[0] < 128 || b[0] > 191 {
			return n, from, err
		}
		fl := (*s.routes.Load())[from]
		if fl == nil {
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if fl = (*s.routes.Load())[from]; fl == nil {
				return n, from, nil
			}
		}
		fl.receive(s.now(), b[:n], s.buf)
	}
}

// route returns the fast leg of a media datagram from from (nil: Pion's).
func (s *fastSock) route(p []byte, from netip.AddrPort) *fastLeg {
	if len(p) < 2 || p[0] < 128 || p[0] > 191 {
		return nil
	}
	return (*s.routes.Load())[from]
}

// readBatched is ReadFromAddrPort with recvmmsg/sendmmsg: media of fast
// legs is handled batch by batch, with the resulting writes sent together
// at the end of each batch (or before a datagram is handed to Pion).
func (s *fastSock) readBatched(b []byte) (int, netip.AddrPort, error) {
	for {
		s.setBatching(true)
		now := s.now() // one clock read per batch: its datagrams arrived together
		for {
			p, from, ok := s.bio.pop()
			if !ok {
				break
			}
			if fl := s.route(p, from); fl != nil {
				if s.delay != nil { // what fl sends now was forwarded from p
					s.arrival.Store(s.bio.arrival())
				}
				fl.receive(now, p, s.buf)
				if s.delay != nil {
					s.arrival.Store(0)
				}
				continue
			}
			s.setBatching(false)
			return copy(b, p), from, nil
		}
		s.setBatching(false)
		if err := s.bio.recv(); err != nil {
			return 0, netip.AddrPort{}, err
		}
	}
}

// setBatching starts queueing sends, or sends what was queued and stops.
func (s *fastSock) setBatching(on bool) {
	s.outMu.Lock()
	if !on && s.bio.queued() {
		s.bio.flush()
	}
	s.batching = on
	s.outMu.Unlock()
}

// send writes one datagram, or queues it while a batch is being handled.
func (s *fastSock) send(p []byte, to netip.AddrPort) (int, error) {
	if s.bio != nil {
		s.outMu.Lock()
		if s.batching {
			var arr int64
			if s.delay != nil {
				arr = s.arrival.Load()
			}
			if !s.bio.queue(p, to, arr) {
				s.bio.flush()
				s.bio.queue(p, to, arr)
			}
			s.outMu.Unlock()
			return len(p), nil
		}
		s.outMu.Unlock()
	}
	return s.WriteToUDPAddrPort(p, to)
}

// WriteToAddrPort implements ice.AddrPortReaderWriter.
func (s *fastSock) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return s.WriteToUDPAddrPort(b, to)
}

// ReadFrom implements net.PacketConn (not used by the mux, which prefers
// ReadFromAddrPort; kept consistent).
func (s *fastSock) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := s.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// SocketStats counts the fast path socket's batched system calls: how
// many recvmmsg/sendmmsg calls moved how many datagrams (zero on Pion's
// path or without batching).
type SocketStats struct {
	RecvCalls, RecvDatagrams, SendCalls, SendDatagrams uint64
}

// SocketStats returns the fast path socket's batch counts since start.
func (e *Engine) SocketStats() SocketStats {
	if e.fast == nil || e.fast.bio == nil {
		return SocketStats{}
	}
	return e.fast.bio.stats()
}

// fastLeg is one connected leg on the fast path: the remote's address, the
// SRTP contexts and the scratch buffers.
type fastLeg struct {
	b      *Bridge
	l      *leg
	sock   *fastSock
	remote netip.AddrPort
	fw     forwarder     // read goroutine only
	rx     *srtp.Context // SRTCP, and SRTP when rxG is nil
	rxG    *rtpGCM       // SRTP with an AEAD-GCM profile (srtpgcm.go)
	rtcpH  rtcp.Header
	trim   legTrim // trim.go

	txMu  sync.Mutex    // pacer and read goroutine both send
	tx    *srtp.Context // SRTCP, and SRTP when txG is nil
	txG   *rtpGCM
	plain []byte
	out   []byte
	txHdr rtp.Header
	rtcpT rtcp.Header
}

func isRTCP(b []byte) bool { return len(b) >= 2 && b[1] >= 192 && b[1] <= 223 }

// receive handles one SRTP or SRTCP datagram from the leg's remote.
func (fl *fastLeg) receive(now time.Time, pkt, scratch []byte) {
	if isRTCP(pkt) {
		plain, err := fl.rx.DecryptRTCP(scratch[:0], pkt, &fl.rtcpH)
		if err != nil {
			return
		}
		fl.b.handleRTCPAll(fl.l, plain)
		return
	}
	// decrypting parses the header into the forwarder's: not parsed twice
	var plain []byte
	var err error
	if fl.rxG != nil {
		plain, err = fl.rxG.decrypt(pkt, &fl.fw.hdr) // in place: pkt is ours
	} else {
		plain, err = fl.rx.DecryptRTP(scratch[:0], pkt, &fl.fw.hdr)
	}
	if err != nil {
		return
	}
	if fl.trim.endHandshake != nil { // the remote finished its DTLS handshake (trim.go)
		fl.handshakeOver()
	}
	if hl := rtpHeaderLen(plain); hl > 0 {
		fl.fw.handleParsed(now, plain[hl:])
	}
}

// rtpHeaderLen is the length of the RTP header at the start of b (fixed
// part, CSRCs, extension); 0 when b is too short.
func rtpHeaderLen(b []byte) int {
	if len(b) < 12 {
		return 0
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return 0
		}
		n += 4 + 4*(int(b[n+2])<<8|int(b[n+3]))
	}
	if n > len(b) {
		return 0
	}
	return n
}

// WriteRTP implements webrtc.TrackLocalWriter: marshal, encrypt, send.
func (fl *fastLeg) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	fl.txMu.Lock()
	defer fl.txMu.Unlock()
	hl := h.MarshalSize()
	if hl+len(payload) > len(fl.plain) {
		return 0, errPacketTooBig
	}
	if fl.txG != nil { // header straight into the output, payload sealed after it
		n, err := h.MarshalTo(fl.out[:cap(fl.out)])
		if err != nil {
			return 0, err
		}
		return fl.sock.send(fl.txG.encrypt(fl.out[:n], h.SSRC, h.SequenceNumber, payload), fl.remote)
	}
	n, err := h.MarshalTo(fl.plain)
	if err != nil {
		return 0, err
	}
	n += copy(fl.plain[n:], payload)
	enc, err := fl.tx.EncryptRTP(fl.out[:0], fl.plain[:n], &fl.txHdr)
	if err != nil {
		return 0, err
	}
	return fl.sock.send(enc, fl.remote)
}

// Write implements webrtc.TrackLocalWriter for a marshalled RTP packet.
func (fl *fastLeg) Write(b []byte) (int, error) {
	fl.txMu.Lock()
	defer fl.txMu.Unlock()
	if fl.txG != nil {
		hl := rtpHeaderLen(b)
		if hl == 0 || len(b) > len(fl.plain) {
			return 0, errPacketTooBig
		}
		hdr := append(fl.out[:0], b[:hl]...)
		ssrc, seq := binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint16(b[2:4])
		return fl.sock.send(fl.txG.encrypt(hdr, ssrc, seq, b[hl:]), fl.remote)
	}
	enc, err := fl.tx.EncryptRTP(fl.out[:0], b, &fl.txHdr)
	if err != nil {
		return 0, err
	}
	return fl.sock.send(enc, fl.remote)
}

// writeRTCP encrypts and sends RTCP packets (the pacer's reports).
func (fl *fastLeg) writeRTCP(pkts []rtcp.Packet) error {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return err
	}
	fl.txMu.Lock()
	defer fl.txMu.Unlock()
	enc, err := fl.tx.EncryptRTCP(fl.out[:0], raw, &fl.rtcpT)
	if err != nil {
		return err
	}
	_, err = fl.sock.send(enc, fl.remote)
	return err
}

var errPacketTooBig = errors.New("media: packet larger than the receive mtu")

// dtlsConnOf returns the DTLS connection of a connected DTLSTransport. Pion
// keeps it private; the fast path needs its keying material exporter, the
// same one Pion derives its SRTP keys from. TestBridgeEndToEnd/fast fails
// if a Pion upgrade moves it.
func dtlsConnOf(t *webrtc.DTLSTransport) (*dtls.Conn, error) {
	f := reflect.ValueOf(t).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*dtls.Conn)(nil)) {
		return nil, fmt.Errorf("%w: pion DTLSTransport has no conn field", ErrFastPath)
	}
	c := *(**dtls.Conn)(unsafe.Pointer(f.UnsafeAddr()))
	if c == nil {
		return nil, fmt.Errorf("%w: dtls not connected", ErrFastPath)
	}
	return c, nil
}

// dtlsIsClient tells our DTLS role from the negotiated SDP (a=setup).
func dtlsIsClient(pc *webrtc.PeerConnection) (bool, error) {
	setup := func(d *webrtc.SessionDescription) string {
		if d == nil {
			return ""
		}
		for _, line := range strings.Split(d.SDP, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=setup:"); ok {
				return v
			}
		}
		return ""
	}
	switch local, remote := setup(pc.CurrentLocalDescription()), setup(pc.CurrentRemoteDescription()); {
	case local == "active", remote == "passive":
		return true, nil
	case local == "passive", remote == "active":
		return false, nil
	default:
		return false, fmt.Errorf("%w: dtls role unknown (setup %q/%q)", ErrFastPath, local, remote)
	}
}

// legKeys derives leg l's SRTP keys from its DTLS connection (as Pion does)
// and returns them with the remote address of the selected candidate pair.
func legKeys(l *leg) (srtp.Config, netip.AddrPort, error) { return SRTPKeys(l.pc) }

// SRTPKeys derives a connected PeerConnection's SRTP keys from its DTLS
// connection (exactly as Pion does) and returns them with the remote
// address of the selected ICE candidate pair: what an endpoint needs to
// carry the connection's SRTP/SRTCP itself once Pion has done ICE and DTLS
// (the fast path; cmd/callgw-load's light peers). Errors wrap ErrFastPath.
func SRTPKeys(pc *webrtc.PeerConnection) (srtp.Config, netip.AddrPort, error) {
	var cfg srtp.Config
	dt := pc.SCTP().Transport()
	pair, err := dt.ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return cfg, netip.AddrPort{}, fmt.Errorf("%w: no selected candidate pair: %w", ErrFastPath, err)
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return cfg, netip.AddrPort{}, fmt.Errorf("%w: remote address %q: %w", ErrFastPath, pair.Remote.Address, err)
	}
	remote := netip.AddrPortFrom(ip.Unmap(), uint16(pair.Remote.Port))
	conn, err := dtlsConnOf(dt)
	if err != nil {
		return cfg, remote, err
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return cfg, remote, fmt.Errorf("%w: no dtls state", ErrFastPath)
	}
	profile, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return cfg, remote, fmt.Errorf("%w: no srtp profile", ErrFastPath)
	}
	client, err := dtlsIsClient(pc)
	if err != nil {
		return cfg, remote, err
	}
	cfg.Profile = srtp.ProtectionProfile(profile)
	if err := cfg.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return cfg, remote, fmt.Errorf("%w: srtp keys: %w", ErrFastPath, err)
	}
	return cfg, remote, nil
}

// goFast moves connected leg l onto the fast path: SRTP contexts from the
// DTLS exporter, the remote address of the selected candidate pair, the
// receive payload types from the negotiated parameters, and our track's
// writes through the leg. It is called from the leg's "connected"
// callback, before the pacer may send on it.
func (b *Bridge) goFast(l *leg) error {
	s := b.e.fast
	cfg, remote, err := legKeys(l)
	if err != nil {
		return err
	}
	// Replay protection as Pion's sessions have it (a 64-packet window).
	rx, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile,
		srtp.SRTPReplayProtection(rtpReplayWindow), srtp.SRTCPReplayProtection(rtpReplayWindow))
	if err != nil {
		return fmt.Errorf("%w: srtp context: %w", ErrFastPath, err)
	}
	tx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
	if err != nil {
		return fmt.Errorf("%w: srtp context: %w", ErrFastPath, err)
	}
	mtu := b.e.cfg.ReceiveMTU
	// The leg and its SRTP states in one allocation: the packet path goes
	// from one to the other, and a call's state is cold in the cache when
	// its next packet comes.
	alloc := &struct {
		fl     fastLeg
		rx, tx rtpGCM
	}{}
	fl := &alloc.fl
	*fl = fastLeg{b: b, l: l, sock: s, remote: remote,
		rx: rx, tx: tx, plain: make([]byte, mtu), out: make([]byte, 0, mtu+64)}
	if isGCM(cfg.Profile) {
		if err := alloc.rx.init(cfg.Profile, cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, true); err != nil {
			return err
		}
		if err := alloc.tx.init(cfg.Profile, cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, false); err != nil {
			return err
		}
		fl.rxG, fl.txG = &alloc.rx, &alloc.tx
	}
	fl.fw = forwarder{b: b, l: l, wa: l.kind == legWhatsApp}
	for _, tr := range l.pc.GetTransceivers() {
		fl.fw.opusIn, fl.fw.teIn = receivePayloadTypes(tr.Receiver().GetParameters().Codecs)
		break
	}
	// Our track now writes through the fast leg.
	bd := l.track.b.Load()
	if bd == nil {
		return fmt.Errorf("%w: track not bound", ErrFastPath)
	}
	nb := *bd
	nb.w = fl
	l.track.b.Store(&nb)
	onlyOurs := true  // every track the leg sends now writes through fl
	if l.aux != nil { // the second track (side.go) shares the transport
		if ab := l.aux.b.Load(); ab != nil {
			na := *ab
			na.w = fl
			l.aux.b.Store(&na)
		} else {
			onlyOurs = false
		}
	}
	b.trimHandshake(l, fl) // trim.go
	l.fast.Store(fl)
	s.add(fl)
	b.trimGathering(l, fl) // trim.go
	// Pion's SRTP and SRTCP sessions and the receiver of the leg would only
	// ever see nothing now: closing them ends their read loops, the two
	// undeclared-stream acceptors and the receiver's first-packet wait (5
	// goroutines and their buffers per leg). ICE, DTLS (alerts) and the
	// PeerConnection stay.
	// A leg with a sender whose track does not write through fl (none of
	// ours does) would still write through Pion's SRTP session, which must
	// then stay open.
	for _, snd := range l.pc.GetSenders() {
		if t := snd.Track(); t != nil && t != webrtc.TrackLocal(l.track) && (l.aux == nil || t != webrtc.TrackLocal(l.aux)) {
			onlyOurs = false
		}
	}
	if !onlyOurs {
		return nil
	}
	if err := closePionSRTP(l.pc.SCTP().Transport()); err != nil {
		b.log.Debug("pion srtp sessions stay open on a fast leg", "leg", l.kind.String(), "err", err)
	}
	for _, tr := range l.pc.GetTransceivers() {
		// its first-packet wait ends (Stop is idempotent: Close stops it again)
		if r := tr.Receiver(); r != nil {
			_ = r.Stop()
		}
	}
	return nil
}

// closePionSRTP closes a connected DTLSTransport's SRTP and SRTCP sessions
// (private fields, read by reflection like dtlsConnOf; Pion's Stop closes
// them again harmlessly: both closes are idempotent).
func closePionSRTP(t *webrtc.DTLSTransport) error {
	v := reflect.ValueOf(t).Elem()
	var errs []error
	for _, name := range []string{"srtpSession", "srtcpSession"} {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Type() != reflect.TypeOf(atomic.Value{}) {
			return fmt.Errorf("%w: pion DTLSTransport has no %s field", ErrFastPath, name)
		}
		switch s := (*atomic.Value)(unsafe.Pointer(f.UnsafeAddr())).Load().(type) {
		case *srtp.SessionSRTP:
			errs = append(errs, s.Close())
		case *srtp.SessionSRTCP:
			errs = append(errs, s.Close())
		default:
			return fmt.Errorf("%w: pion %s not started", ErrFastPath, name)
		}
	}
	return errors.Join(errs...)
}

// dropFast takes leg l off the fast path (closing or failed).
func (b *Bridge) dropFast(l *leg) {
	if fl := l.fast.Load(); fl != nil {
		fl.sock.remove(fl)
	}
}

// handleRTCPAll handles a decrypted compound RTCP packet from leg l: SRs
// from the remote (for our reception reports) and report blocks about our
// stream (RTT).
func (b *Bridge) handleRTCPAll(l *leg, raw []byte) {
	var ours uint32
	if bd := l.track.b.Load(); bd != nil {
		ours = bd.ssrc
	}
	remote := uint32(0)
	if len(raw) >= 8 && raw[1] == 200 { // SR: sender SSRC
		remote = uint32(raw[4])<<24 | uint32(raw[5])<<16 | uint32(raw[6])<<8 | uint32(raw[7])
	}
	if remote != 0 && remote != ours {
		b.handleRTCP(l, remote, raw)
	}
	if ours != 0 {
		b.handleRTCP(l, ours, raw)
	}
}

// receivePayloadTypes returns the Opus and telephone-event payload types
// of a receiver's negotiated codecs (0: none).
func receivePayloadTypes(codecs []webrtc.RTPCodecParameters) (opus, te uint8) {
	for _, c := range codecs {
		switch {
		case strings.EqualFold(c.MimeType, mimeTelephoneEvent) && te == 0:
			te = uint8(c.PayloadType)
		case strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus) && opus == 0:
			opus = uint8(c.PayloadType)
		}
	}
	return opus, te
}
