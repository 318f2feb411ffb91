package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callgw/callgw/media"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// Light peers (-peers light, the default on Linux): each simulated
// endpoint does a real ICE + DTLS handshake with Pion, then its SRTP is
// carried by the load tool itself, as the gateway's fast path does:
//
//   - every endpoint has its own loopback address (127.64.x.y) so that the
//     gateway tells them apart by source address, but all of them share ONE
//     UDP socket: received datagrams say which address they were sent to
//     (IP_PKTINFO), sent ones say which address they leave from;
//   - one reader goroutine reads that socket in recvmmsg batches: SRTP of a
//     connected endpoint is decrypted and counted right there, STUN and DTLS
//     go to the endpoint's own Pion ICE UDP mux (which still answers the
//     gateway's consent checks and carries DTLS alerts);
//   - one player goroutine sends every endpoint's audio every 20 ms,
//     spread over the 20 ms in slots (-send-slots; default 20 of 1 ms) (as independent phones would, not
//     in one burst), SRTP-encrypted with keys from the DTLS exporter, in
//     sendmmsg batches, plus one RTCP sender report per second per endpoint.
//
// So the peers' cost per packet is close to the gateway's fast path and the
// load tool has headroom beyond 1,000 calls on one core.

const (
	defaultSendSlots = 20 // player slots per 20 ms frame (-send-slots): 1 ms each
	maxSendSlots     = 400
	maxLightPeers    = 2*maxCalls + 16
	lightCtlQueue    = 64 // STUN/DTLS datagrams queued per endpoint for Pion
)

// lightNet is the shared socket, its reader and the player.
type lightNet struct {
	sock  *lightSock
	epoch time.Time

	peers  [maxLightPeers]atomic.Pointer[lightPeer] // by address index
	nextMu sync.Mutex
	next   int
	free   []int

	playMu  sync.Mutex
	playing [][]*lightPeer // one list per player slot
	slot    time.Duration  // one player slot: 20 ms / len(playing)

	frames  [][]byte
	done    chan struct{}
	wg      sync.WaitGroup
	scratch []byte // reader only
	rxHdr   rtp.Header
}

// lightPeerIP is endpoint i's loopback address.
func lightPeerIP(i int) [4]byte { return [4]byte{127, 64, byte(i >> 8), byte(i)} }

func lightIndex(ip [4]byte) int {
	if ip[0] != 127 || ip[1] != 64 {
		return -1
	}
	return int(ip[2])<<8 | int(ip[3])
}

// newLightNet opens the shared socket and starts the reader and player.
func newLightNet(epoch time.Time, frames [][]byte, slots int) (*lightNet, error) {
	s, err := openLightSock()
	if err != nil {
		return nil, err
	}
	n := &lightNet{sock: s, epoch: epoch, frames: frames, next: 1, done: make(chan struct{}),
		scratch: make([]byte, 1600), playing: make([][]*lightPeer, slots), slot: 20 * time.Millisecond / time.Duration(slots)}
	n.wg.Add(2)
	go n.read()
	go n.play()
	return n, nil
}

// close stops the reader and the player (endpoints must be closed first).
func (n *lightNet) close() {
	close(n.done)
	_ = n.sock.close()
	n.wg.Wait()
}

// lightPeer is one endpoint on the shared socket.
type lightPeer struct {
	n   *lightNet
	idx int
	ip  [4]byte
	vc  *vconn
	mux *ice.UDPMuxDefault
	ep  *endpoint

	media atomic.Pointer[lightMedia] // once connected

	// player only
	seq    uint16
	ts     uint32
	count  uint32
	frame  int
	nextSR int
}

// lightMedia is an endpoint's SRTP state once its handshake is done.
type lightMedia struct {
	remote netip.AddrPort
	rx     *srtp.Context // reader only
	tx     *srtp.Context // player only
	ssrc   uint32
	txHdr  rtp.Header
	rtcpH  rtcp.Header
}

// api builds the Pion API of a new light endpoint: its own address, its own
// ICE UDP mux over the shared socket, no interceptors (it sends its own
// reports).
func (n *lightNet) newPeer(lite bool, opusFmtp string) (*lightPeer, *webrtc.API, error) {
	n.nextMu.Lock()
	var idx int
	switch {
	case len(n.free) > 0:
		idx, n.free = n.free[len(n.free)-1], n.free[:len(n.free)-1]
	case n.next < maxLightPeers:
		idx = n.next
		n.next++
	default:
		n.nextMu.Unlock()
		return nil, nil, errors.New("light peers: out of addresses")
	}
	n.nextMu.Unlock()
	p := &lightPeer{n: n, idx: idx, ip: lightPeerIP(idx), seq: 1, ts: 960, nextSR: 50}
	p.vc = &vconn{p: p, in: make(chan ctlPkt, lightCtlQueue), closed: make(chan struct{}),
		local: &net.UDPAddr{IP: net.IP(p.ip[:]).To16(), Port: n.sock.port}}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	p.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: lf.NewLogger("mux"), UDPConn: p.vc})
	n.peers[idx].Store(p)

	me := &webrtc.MediaEngine{}
	if err := registerPeerCodecs(me, opusFmtp); err != nil {
		p.release()
		return nil, nil, err
	}
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetLite(lite)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEUDPMux(p.mux)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	return p, api, nil
}

// goLight moves the connected endpoint's media onto the shared socket.
func (p *lightPeer) goLight(pc *webrtc.PeerConnection) error {
	cfg, remote, err := media.SRTPKeys(pc)
	if err != nil {
		return err
	}
	rx, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile)
	if err != nil {
		return fmt.Errorf("srtp context: %w", err)
	}
	tx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
	if err != nil {
		return fmt.Errorf("srtp context: %w", err)
	}
	var ssrc uint32
	for _, s := range pc.GetSenders() {
		if ps := s.GetParameters().Encodings; len(ps) > 0 {
			ssrc = uint32(ps[0].SSRC)
		}
	}
	p.media.Store(&lightMedia{remote: remote, rx: rx, tx: tx, ssrc: ssrc})
	return nil
}

// release takes the endpoint off the socket (after its Pion side closed).
func (p *lightPeer) release() {
	p.n.stopPlaying(p)
	_ = p.mux.Close()
	if p.n.peers[p.idx].CompareAndSwap(p, nil) {
		p.n.nextMu.Lock()
		p.n.free = append(p.n.free, p.idx)
		p.n.nextMu.Unlock()
	}
}

func (n *lightNet) startPlaying(p *lightPeer) {
	n.playMu.Lock()
	s := p.idx % len(n.playing)
	n.playing[s] = append(n.playing[s], p)
	n.playMu.Unlock()
}

func (n *lightNet) stopPlaying(p *lightPeer) {
	n.playMu.Lock()
	s := p.idx % len(n.playing)
	for i, q := range n.playing[s] {
		if q == p {
			n.playing[s] = append(n.playing[s][:i], n.playing[s][i+1:]...)
			break
		}
	}
	n.playMu.Unlock()
}

// read is the reader goroutine.
func (n *lightNet) read() {
	defer n.wg.Done()
	for {
		if err := n.sock.recv(); err != nil {
			return
		}
		now := time.Since(n.epoch)
		for {
			pkt, dst, from, ok := n.sock.pop()
			if !ok {
				break
			}
			i := lightIndex(dst)
			if i <= 0 || i >= maxLightPeers {
				continue
			}
			p := n.peers[i].Load()
			if p == nil {
				continue
			}
			if m := p.media.Load(); m != nil && len(pkt) >= 2 && pkt[0] >= 128 && pkt[0] <= 191 && from == m.remote {
				if pkt[1] >= 192 && pkt[1] <= 223 {
					continue // RTCP from the gateway: not needed here
				}
				plain, err := m.rx.DecryptRTP(n.scratch[:0], pkt, &n.rxHdr)
				if err != nil {
					continue
				}
				hl := n.rxHdr.MarshalSize()
				if hl > len(plain) {
					continue
				}
				p.ep.rx.got(now, plain[hl:])
				p.ep.onRx()
				continue
			}
			p.vc.deliver(pkt, from)
		}
	}
}

// play is the player goroutine: slot k of every 20 ms frame sends the
// audio of the endpoints whose index is k modulo the number of slots.
func (n *lightNet) play() {
	defer n.wg.Done()
	start := time.Now()
	tk := time.NewTicker(n.slot)
	defer tk.Stop()
	var next int64
	var rtpBuf, payload []byte
	rtpBuf = make([]byte, 1500)
	var list []*lightPeer
	for {
		select {
		case <-n.done:
			return
		case <-tk.C:
		}
		cur := int64(time.Since(start) / n.slot)
		n.sock.beginBatch()
		for ; next <= cur; next++ {
			n.playMu.Lock()
			list = append(list[:0], n.playing[next%int64(len(n.playing))]...)
			n.playMu.Unlock()
			for _, p := range list {
				payload = p.sendFrame(rtpBuf, payload)
			}
		}
		n.sock.endBatch()
		clear(list)
	}
}

// sendFrame sends the endpoint's next marked frame (and, once a second, an
// RTCP sender report); it returns the payload scratch buffer for reuse.
func (p *lightPeer) sendFrame(buf, payload []byte) []byte {
	m := p.media.Load()
	if m == nil {
		return payload
	}
	frames := p.n.frames
	var ok bool
	payload, ok = mark(payload, frames[p.frame%len(frames)], int64(time.Since(p.n.epoch)), p.count)
	p.frame++
	if !ok {
		return payload
	}
	m.txHdr = rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: m.ssrc}
	hl, err := m.txHdr.MarshalTo(buf)
	if err != nil {
		return payload
	}
	nb := hl + copy(buf[hl:], payload)
	enc, err := m.tx.EncryptRTP(p.n.sock.outSlot(), buf[:nb], &m.txHdr)
	if err == nil && p.n.sock.queue(enc, p.ip, m.remote) {
		p.ep.sent.Add(1)
		p.count++
	}
	p.seq++
	p.ts += 960
	p.nextSR--
	if p.nextSR <= 0 {
		p.nextSR = 50
		sr := rtcp.SenderReport{SSRC: m.ssrc, NTPTime: uint64(time.Since(p.n.epoch)), RTPTime: p.ts,
			PacketCount: p.count, OctetCount: p.count * uint32(len(payload))}
		if raw, err := sr.Marshal(); err == nil {
			if enc, err := m.tx.EncryptRTCP(p.n.sock.outSlot(), raw, &m.rtcpH); err == nil {
				p.n.sock.queue(enc, p.ip, m.remote)
			}
		}
	}
	return payload
}

// ctlPkt is a STUN or DTLS datagram for an endpoint's Pion mux.
type ctlPkt struct {
	b    []byte
	from netip.AddrPort
}

// vconn is an endpoint's view of the shared socket for Pion's ICE UDP mux:
// its own local address; reads get what the reader hands over; writes leave
// from its address.
type vconn struct {
	p      *lightPeer
	local  *net.UDPAddr
	in     chan ctlPkt
	once   sync.Once
	closed chan struct{}
}

func (c *vconn) deliver(pkt []byte, from netip.AddrPort) {
	select {
	case c.in <- ctlPkt{b: append([]byte(nil), pkt...), from: from}:
	default: // Pion is behind: drop, as a full socket buffer would
	}
}

func (c *vconn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *vconn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (c *vconn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if err := c.p.n.sock.sendOne(b, c.p.ip, to); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *vconn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("vconn: address %T", addr)
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

func (c *vconn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *vconn) LocalAddr() net.Addr              { return c.local }
func (c *vconn) SetDeadline(time.Time) error      { return nil }
func (c *vconn) SetReadDeadline(time.Time) error  { return nil }
func (c *vconn) SetWriteDeadline(time.Time) error { return nil }
func (c *vconn) SetReadBuffer(int) error          { return nil }
func (c *vconn) SetWriteBuffer(int) error         { return nil }

// Peer kinds (-peers).
const (
	peersLight = "light"
	peersPion  = "pion"
)
