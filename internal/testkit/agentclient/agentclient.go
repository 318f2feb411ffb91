// Package agentclient is a Go softphone speaking callgw's agent protocol
// (docs/agent-protocol.md) with a real Pion peer: it authenticates, takes
// calls, answers the gateway's SDP offer, trickles ICE, plays Opus packets
// from an Ogg file and keeps what it receives. End-to-end tests and the load
// tool use it; it is also a reference for third-party softphones.
package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Msg is any server message, decoded loosely.
type Msg struct {
	Type      string                   `json:"type"`
	Ref       string                   `json:"ref,omitempty"`
	Code      string                   `json:"code,omitempty"`
	Message   string                   `json:"message,omitempty"`
	CallID    string                   `json:"call_id,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Call      *CallInfo                `json:"call,omitempty"`
	Calls     []CallInfo               `json:"calls,omitempty"`
	Reason    string                   `json:"reason,omitempty"`
	Outcome   string                   `json:"outcome,omitempty"`
	Agent     string                   `json:"agent,omitempty"`
	Status    string                   `json:"status,omitempty"`
	MetaCode  int                      `json:"meta_code,omitempty"`
	To        string                   `json:"to,omitempty"`
	Raw       json.RawMessage          `json:"-"`

	// ICEServers come in welcome and ice_servers.
	ICEServers []webrtc.ICEServer `json:"ice_servers,omitempty"`
}

// CallInfo mirrors the protocol's CallInfo.
type CallInfo struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	From      string `json:"from"`
	To        string `json:"to"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Agent     string `json:"agent"`
}

// Options configure a Client.
type Options struct {
	Audio        [][]byte // Opus packets to play in a loop while in a call (20 ms each); nil = silence frames
	LoopbackOnly bool     // gather on 127.0.0.1 only
	// ICEServers are used for every peer connection. With ServerICE they
	// are replaced by the servers the gateway hands out (welcome, then
	// ice_servers renewals), as the agent page does.
	ICEServers []webrtc.ICEServer
	ServerICE  bool
	// RelayOnly gathers and uses TURN relay candidates only
	// (iceTransportPolicy "relay").
	RelayOnly bool
}

// Client is one agent session.
type Client struct {
	opts Options
	ws   *websocket.Conn
	wmu  sync.Mutex

	mu      sync.Mutex
	msgs    []Msg
	notify  chan struct{}
	closed  chan struct{}
	readErr error

	pcs      map[string]*peer // by call id
	ice      []webrtc.ICEServer
	Welcome  Msg
	readDone chan struct{}
}

type peer struct {
	pc       *webrtc.PeerConnection
	sender   *webrtc.RTPSender
	track    *webrtc.TrackLocalStaticRTP
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	received [][]byte            // the main track "audio": the caller
	byTrack  map[string][][]byte // every track by its id ("side": a whisper, or the other agent of a consultation)
	state    webrtc.PeerConnectionState
	pending  []webrtc.ICECandidateInit
	remote   bool
}

// Dial connects to wsURL (ws://host/ws/agent), says hello and waits for welcome.
func Dial(ctx context.Context, wsURL, token string, o Options) (*Client, error) {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{})
	if err != nil {
		return nil, fmt.Errorf("agentclient: dial: %w", err)
	}
	c := &Client{opts: o, ws: ws, notify: make(chan struct{}, 1), closed: make(chan struct{}),
		pcs: map[string]*peer{}, readDone: make(chan struct{}), ice: o.ICEServers}
	go c.read()
	if err := c.Send(map[string]any{"type": "hello", "v": 1, "token": token}); err != nil {
		c.Close()
		return nil, err
	}
	m, err := c.Wait(ctx, func(m Msg) bool { return m.Type == "welcome" || m.Type == "error" })
	if err != nil {
		c.Close()
		return nil, err
	}
	if m.Type == "error" {
		c.Close()
		return nil, fmt.Errorf("agentclient: %s: %s", m.Code, m.Message)
	}
	c.Welcome = m
	return c, nil
}

func (c *Client) read() {
	defer close(c.readDone)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			c.poke()
			return
		}
		var m Msg
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		m.Raw = b
		if m.Type == "ice" && m.Candidate != nil {
			c.addRemoteCandidate(m.CallID, *m.Candidate)
		}
		c.mu.Lock()
		if (m.Type == "welcome" || m.Type == "ice_servers") && c.opts.ServerICE {
			c.ice = m.ICEServers
		}
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
		c.poke()
	}
}

func (c *Client) poke() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Send writes one message.
func (c *Client) Send(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

// Wait returns (and consumes) the first message, old or new, matching match.
func (c *Client) Wait(ctx context.Context, match func(Msg) bool) (Msg, error) {
	for {
		c.mu.Lock()
		for i, m := range c.msgs {
			if match(m) {
				c.msgs = append(c.msgs[:i:i], c.msgs[i+1:]...)
				c.mu.Unlock()
				return m, nil
			}
		}
		rerr := c.readErr
		c.mu.Unlock()
		if rerr != nil {
			return Msg{}, fmt.Errorf("agentclient: connection closed: %w", rerr)
		}
		select {
		case <-ctx.Done():
			return Msg{}, fmt.Errorf("agentclient: waiting: %w", ctx.Err())
		case <-c.notify:
		}
	}
}

// WaitType waits for a message of type t (about callID when not empty).
func (c *Client) WaitType(ctx context.Context, t, callID string) (Msg, error) {
	return c.Wait(ctx, func(m Msg) bool {
		if m.Type != t {
			return false
		}
		if callID == "" {
			return true
		}
		return m.CallID == callID || (m.Call != nil && m.Call.ID == callID)
	})
}

// Has reports whether a message matching match is queued, without consuming it.
func (c *Client) Has(match func(Msg) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if match(m) {
			return true
		}
	}
	return false
}

// Available sets presence and waits for the echo.
func (c *Client) Available(ctx context.Context, on bool) error {
	st := "away"
	if on {
		st = "available"
	}
	if err := c.Send(map[string]any{"type": "presence", "status": st}); err != nil {
		return err
	}
	_, err := c.WaitType(ctx, "presence", "")
	return err
}

// Accept accepts a ringing call and completes the agent leg: waits for the
// gateway's offer, answers it with a Pion peer and starts playing audio.
// It returns once the answer is sent; use WaitConnected for media.
func (c *Client) Accept(ctx context.Context, callID string) error {
	if err := c.Send(map[string]any{"type": "accept", "call_id": callID}); err != nil {
		return err
	}
	return c.completeLeg(ctx, callID)
}

// Resume asks for a new agent leg (after losing the peer) and completes it.
func (c *Client) Resume(ctx context.Context, callID string) error {
	if err := c.Send(map[string]any{"type": "resume", "call_id": callID}); err != nil {
		return err
	}
	return c.completeLeg(ctx, callID)
}

// completeLeg waits for an offer (or an error) and answers it.
func (c *Client) completeLeg(ctx context.Context, callID string) error {
	m, err := c.Wait(ctx, func(m Msg) bool {
		return (m.Type == "offer" || m.Type == "error") && m.CallID == callID
	})
	if err != nil {
		return err
	}
	if m.Type == "error" {
		return fmt.Errorf("agentclient: %s: %s", m.Code, m.Message)
	}
	return c.answerOffer(ctx, callID, m.SDP)
}

// AnswerOffer answers an offer that arrived without an accept (dialing).
func (c *Client) AnswerOffer(ctx context.Context, callID string) error {
	return c.completeLeg(ctx, callID)
}

func (c *Client) answerOffer(ctx context.Context, callID, offer string) error {
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if c.opts.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip netIP) bool { return ip.IsLoopback() && ip.To4() != nil })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: "audio/telephone-event", ClockRate: 8000}, PayloadType: 126}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me))
	c.mu.Lock()
	iceServers := append([]webrtc.ICEServer(nil), c.ice...)
	c.mu.Unlock()
	conf := webrtc.Configuration{ICEServers: iceServers}
	if c.opts.RelayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		return err
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "agent")
	if err != nil {
		_ = pc.Close()
		return err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		_ = pc.Close()
		return err
	}
	p := &peer{pc: pc, sender: sender, track: track, stop: make(chan struct{})}
	c.mu.Lock()
	if old := c.pcs[callID]; old != nil {
		go old.close()
	}
	c.pcs[callID] = p
	c.mu.Unlock()

	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		p.state = s
		p.mu.Unlock()
		c.poke()
	})
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		_ = c.Send(map[string]any{"type": "ice", "call_id": callID, "candidate": cand.ToJSON()})
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.wg.Add(1)
		defer p.wg.Done()
		id := tr.ID()
		main := id != "side"
		buf := make([]byte, 1500)
		var pkt rtp.Packet
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != 111 {
				continue
			}
			cp := append([]byte(nil), pkt.Payload...)
			p.mu.Lock()
			if main {
				p.received = append(p.received, cp)
			}
			if p.byTrack == nil {
				p.byTrack = map[string][][]byte{}
			}
			p.byTrack[id] = append(p.byTrack[id], cp)
			p.mu.Unlock()
		}
	})
	p.wg.Add(1)
	go func() { // drain RTCP
		defer p.wg.Done()
		b := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(b); err != nil {
				return
			}
		}
	}()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		p.close()
		return fmt.Errorf("agentclient: remote offer: %w", err)
	}
	c.flushCandidates(callID, p)
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		p.close()
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		p.close()
		return err
	}
	if err := c.Send(map[string]any{"type": "answer", "call_id": callID, "sdp": ans.SDP}); err != nil {
		p.close()
		return err
	}
	p.wg.Add(1)
	go p.play(c.opts.Audio)
	return nil
}

func (c *Client) addRemoteCandidate(callID string, cand webrtc.ICECandidateInit) {
	c.mu.Lock()
	p := c.pcs[callID]
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	if !p.remote {
		p.pending = append(p.pending, cand)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = p.pc.AddICECandidate(cand)
}

func (c *Client) flushCandidates(callID string, p *peer) {
	// candidates that arrived before this peer existed are still queued as messages
	c.mu.Lock()
	var early []webrtc.ICECandidateInit
	for _, m := range c.msgs {
		if m.Type == "ice" && m.CallID == callID && m.Candidate != nil {
			early = append(early, *m.Candidate)
		}
	}
	c.mu.Unlock()
	p.mu.Lock()
	p.remote = true
	pending := append(early, p.pending...)
	p.pending = nil
	p.mu.Unlock()
	for _, cand := range pending {
		_ = p.pc.AddICECandidate(cand)
	}
}

func (p *peer) play(pkts [][]byte) {
	defer p.wg.Done()
	silence := [][]byte{{0xf8, 0xff, 0xfe}}
	if len(pkts) == 0 {
		pkts = silence
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var seq uint16
	var ts uint32
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		seq++
		ts += 960
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts}, Payload: pkts[i%len(pkts)]}
		if err := p.track.WriteRTP(pkt); err != nil {
			return
		}
	}
}

func (p *peer) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	_ = p.pc.Close()
	p.wg.Wait()
}

// WaitConnected waits until the agent leg of callID is connected.
func (c *Client) WaitConnected(ctx context.Context, callID string) error {
	for {
		c.mu.Lock()
		p := c.pcs[callID]
		c.mu.Unlock()
		if p != nil {
			p.mu.Lock()
			st := p.state
			p.mu.Unlock()
			if st == webrtc.PeerConnectionStateConnected {
				return nil
			}
			if st == webrtc.PeerConnectionStateFailed {
				return errors.New("agentclient: agent leg failed")
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agentclient: waiting for media: %w", ctx.Err())
		case <-c.notify:
			c.poke() // let other waiters see it too
			time.Sleep(5 * time.Millisecond)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ICEServers returns the ICE servers the next peer connection will use.
func (c *Client) ICEServers() []webrtc.ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]webrtc.ICEServer(nil), c.ice...)
}

// SelectedPair returns the candidate pair the agent leg of callID uses
// (nil before ICE connected).
func (c *Client) SelectedPair(callID string) *webrtc.ICECandidatePair {
	c.mu.Lock()
	p := c.pcs[callID]
	c.mu.Unlock()
	if p == nil || p.sender.Transport() == nil {
		return nil
	}
	pair, err := p.sender.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil {
		return nil
	}
	return pair
}

// Stats returns the stats of callID's peer connection (nil without one).
func (c *Client) Stats(callID string) webrtc.StatsReport {
	c.mu.Lock()
	p := c.pcs[callID]
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.pc.GetStats()
}

// Received returns copies of the Opus payloads received on callID's leg.
func (c *Client) Received(callID string) [][]byte {
	c.mu.Lock()
	p := c.pcs[callID]
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.received))
	copy(out, p.received)
	return out
}

// ReceivedTrack returns copies of the Opus payloads received on callID's
// leg on track id ("audio": the caller; "side": a whisper, or on a
// consultation leg the agent who transfers).
func (c *Client) ReceivedTrack(callID, id string) [][]byte {
	c.mu.Lock()
	p := c.pcs[callID]
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.byTrack[id]...)
}

// DropPeer closes callID's peer connection (a reloaded page loses it).
func (c *Client) DropPeer(callID string) {
	c.mu.Lock()
	p := c.pcs[callID]
	delete(c.pcs, callID)
	c.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// CloseSocket closes only the websocket (the peer connections live on).
func (c *Client) CloseSocket() {
	_ = c.ws.Close()
	<-c.readDone
}

// Close closes the websocket and every peer.
func (c *Client) Close() {
	c.CloseSocket()
	c.mu.Lock()
	ps := c.pcs
	c.pcs = map[string]*peer{}
	c.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}
