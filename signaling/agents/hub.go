package agents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler receives what authenticated sessions say. The call controller
// implements it.
type Handler interface {
	// Welcome returns the calls a new session should see (ringing calls and
	// the agent's own calls).
	Welcome(s *Session) []CallInfo
	// Handle acts on one client message. A *CodedError becomes an "error"
	// message; other errors become "internal".
	Handle(ctx context.Context, s *Session, m *ClientMessage) error
	// PresenceChanged is called after a session's presence changed.
	PresenceChanged(s *Session)
	// Closed is called once when a session's socket is gone.
	Closed(s *Session)
}

// HubConfig configures the Hub.
type HubConfig struct {
	TokenSecret  []byte        // verifies agent tokens (required)
	ICEServers   []ICEServer   // handed to browsers in welcome
	Settings     Settings      // handed to browsers in welcome
	HelloTimeout time.Duration // default 10s
	PingInterval time.Duration // default 20s
	PongWait     time.Duration // default 45s
	SendQueue    int           // frames queued per session before it is dropped; default 256
	Now          func() time.Time

	// ICEServersFor, when set, gives each session its own ICE servers
	// (time-limited TURN credentials) in welcome instead of ICEServers, and
	// again in an ice_servers message every ICERenewEvery (0: never).
	ICEServersFor func(agent string) []ICEServer
	ICERenewEvery time.Duration
}

func (c *HubConfig) defaults() {
	if c.HelloTimeout == 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PongWait == 0 {
		c.PongWait = 45 * time.Second
	}
	if c.SendQueue == 0 {
		c.SendQueue = 256
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ICEServers == nil {
		c.ICEServers = []ICEServer{}
	}
}

// Session is one authenticated websocket of an agent.
type Session struct {
	ID    string
	Agent string
	Role  Role

	hub      *Hub
	conn     *websocket.Conn
	out      chan []byte
	done     chan struct{}
	once     sync.Once    // closes done
	connOnce sync.Once    // closes conn
	presence atomic.Value // Presence
	// closeCode is the close code the writer sends before the socket goes
	// (0: none, the socket is simply closed).
	closeCode   atomic.Int32
	closeReason string // set before done closes
}

// Presence returns the session's presence.
func (s *Session) Presence() Presence { return s.presence.Load().(Presence) }

// Send queues v (marshalled to JSON) for the session. A session whose queue
// is full is closed: a stuck browser must not stall signaling.
func (s *Session) Send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.hub.log.Error("agents: marshal", "err", err)
		return
	}
	s.sendRaw(b)
}

func (s *Session) sendRaw(b []byte) {
	select {
	case <-s.done:
		return
	default:
	}
	select {
	case s.out <- b:
	default:
		if s.closeWith(ClosePolicyViolation, "send queue full: read your messages") {
			s.hub.dropped.Inc()
			s.hub.log.Warn("agents: send queue full, closing session (1008)", "agent", s.Agent, "session", s.ID)
		}
	}
}

// SendError sends an "error" message.
func (s *Session) SendError(code, msg, ref, callID string, metaCode int) {
	s.Send(ErrorMsg{Type: TypeError, Code: code, Message: msg, Ref: ref, CallID: callID, MetaCode: metaCode})
}

// ClosePolicyViolation (1008) closes a session that does not keep up with
// its messages (its send queue overflowed, e.g. while it floods the server
// with requests and does not read the answers).
const ClosePolicyViolation = websocket.ClosePolicyViolation

// closeGrace is how long a session closed with a code is given to answer
// the close frame before its socket is closed.
const closeGrace = 2 * time.Second

// close ends the session now: the socket is closed.
func (s *Session) close() {
	s.once.Do(func() { close(s.done) })
	s.connOnce.Do(func() { _ = s.conn.Close() })
}

// closeWith ends the session with a close frame: queued messages are
// dropped, the writer sends the close frame, then the reader drains what
// the peer still sends until it answers the close or closeGrace passes, so
// that the socket ends with FIN and a close code, not a TCP reset.
// It reports whether this call closed the session.
func (s *Session) closeWith(code int, reason string) (closed bool) {
	s.once.Do(func() {
		s.closeReason = reason
		s.closeCode.Store(int32(code))
		close(s.done)
		// A write blocked on a peer that does not read gives up within
		// the grace too (then no close frame can reach that peer).
		_ = s.conn.NetConn().SetWriteDeadline(time.Now().Add(closeGrace))
		closed = true
	})
	return closed
}

// Hub accepts agent websockets and tracks sessions and presence.
type Hub struct {
	cfg     HubConfig
	handler Handler
	log     *slog.Logger
	up      websocket.Upgrader

	mu       sync.RWMutex
	sessions map[string]*Session
	closed   bool
	wg       sync.WaitGroup
	dropped  prometheus.Counter
}

// NewHub builds a hub. reg may be nil.
func NewHub(cfg HubConfig, h Handler, reg prometheus.Registerer, log *slog.Logger) (*Hub, error) {
	if len(cfg.TokenSecret) < 16 {
		return nil, errors.New("agents: token secret must be at least 16 bytes")
	}
	if h == nil {
		return nil, errors.New("agents: nil handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.defaults()
	hub := &Hub{cfg: cfg, handler: h, log: log, sessions: map[string]*Session{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "agent_sessions_dropped_total",
			Help: "Agent sessions closed (1008) because their send queue overflowed: the client did not read its messages."})}
	hub.up = websocket.Upgrader{
		ReadBufferSize: 4096, WriteBufferSize: 4096,
		// Tokens travel in the hello message, never in cookies, so a foreign
		// origin gains nothing: third-party softphones may connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	if reg != nil {
		newMetrics(reg, hub)
	}
	return hub, nil
}

// ServeHTTP upgrades GET /ws/agent and runs the session until it ends.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	closed := h.closed
	h.mu.RUnlock()
	if closed {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered
	}
	conn.SetReadLimit(MaxMessageBytes)
	h.wg.Add(1)
	defer h.wg.Done()
	h.serve(r.Context(), conn)
}

func (h *Hub) serve(ctx context.Context, conn *websocket.Conn) {
	_ = conn.SetReadDeadline(h.cfg.Now().Add(h.cfg.HelloTimeout))
	claims, ref, err := h.hello(conn)
	if err != nil {
		var ce *CodedError
		code, close, msg := CodeUnauthenticated, 4001, "first message must be hello with a token"
		if errors.As(err, &ce) {
			code, msg = ce.Code, ce.Message // fixed texts: the cause (e.g. a read timeout) is not for the client
			if code == CodeUnsupportedVersion {
				close = 4002
			}
		}
		h.log.Debug("agents: hello refused", "code", code, "err", err)
		b, _ := json.Marshal(ErrorMsg{Type: TypeError, Code: code, Message: msg, Ref: ref})
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = conn.WriteMessage(websocket.TextMessage, b)
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(close, code))
		_ = conn.Close()
		return
	}
	s := &Session{ID: newID(), Agent: claims.Subject, Role: claims.Role, hub: h, conn: conn,
		out: make(chan []byte, h.cfg.SendQueue), done: make(chan struct{})}
	s.presence.Store(Away)

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = conn.Close()
		return
	}
	h.sessions[s.ID] = s
	h.mu.Unlock()

	writerDone := make(chan struct{})
	go func() { defer close(writerDone); h.writer(s) }()

	calls := h.handler.Welcome(s)
	if calls == nil {
		calls = []CallInfo{}
	}
	s.Send(Welcome{Type: TypeWelcome, V: Version, Agent: s.Agent, Role: s.Role, Session: s.ID,
		Presence: Away, ICEServers: h.iceServers(s.Agent), Calls: calls, Settings: h.cfg.Settings})
	h.log.Info("agent connected", "agent", s.Agent, "session", s.ID)

	h.reader(ctx, s)

	s.close()
	<-writerDone
	h.mu.Lock()
	delete(h.sessions, s.ID)
	h.mu.Unlock()
	h.handler.Closed(s)
	h.log.Info("agent disconnected", "agent", s.Agent, "session", s.ID)
}

func (h *Hub) hello(conn *websocket.Conn) (*Claims, string, error) {
	mt, b, err := conn.ReadMessage()
	if err != nil {
		return nil, "", Errorf(CodeUnauthenticated, "no hello", err)
	}
	if mt != websocket.TextMessage {
		return nil, "", Errorf(CodeBadMessage, "text frames only", nil)
	}
	m, err := ParseClientMessage(b)
	if err != nil {
		ref := ""
		if m != nil {
			ref = m.Ref
		}
		return nil, ref, Errorf(CodeUnauthenticated, "first message must be hello with a token", err)
	}
	if m.Type != TypeHello {
		return nil, m.Ref, Errorf(CodeUnauthenticated, "first message must be hello", nil)
	}
	if m.V != Version {
		return nil, m.Ref, Errorf(CodeUnsupportedVersion, "this server speaks v1", nil)
	}
	c, err := VerifyToken(h.cfg.TokenSecret, m.Token, h.cfg.Now())
	if err != nil {
		return nil, m.Ref, Errorf(CodeUnauthenticated, "bad or expired token", err)
	}
	return c, m.Ref, nil
}

func (h *Hub) reader(ctx context.Context, s *Session) {
	conn := s.conn
	_ = conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	conn.SetPongHandler(func(string) error {
		select {
		case <-s.done:
			return nil // closing: the close grace stands
		default:
		}
		return conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	})
	for {
		mt, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		select {
		case <-s.done:
			// Closing: what the peer still sends is read (so the socket
			// does not end with a reset) and dropped.
			continue
		default:
		}
		_ = conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
		if mt != websocket.TextMessage {
			s.SendError(CodeBadMessage, "text frames only", "", "", 0)
			continue
		}
		m, err := ParseClientMessage(b)
		if err != nil {
			ref, callID := "", ""
			if m != nil {
				ref, callID = m.Ref, m.CallID
			}
			s.SendError(CodeBadMessage, err.Error(), ref, callID, 0)
			continue
		}
		switch m.Type {
		case TypeHello:
			s.SendError(CodeOutOfTurn, "already authenticated", m.Ref, "", 0)
		case TypePing:
			s.Send(struct {
				Type string `json:"type"`
				Ref  string `json:"ref,omitempty"`
			}{TypePong, m.Ref})
		case TypePresence:
			s.presence.Store(m.Status)
			s.Send(PresenceMsg{Type: TypePresence, Ref: m.Ref, Status: m.Status})
			h.handler.PresenceChanged(s)
		default:
			if err := h.handler.Handle(ctx, s, m); err != nil {
				var ce *CodedError
				if errors.As(err, &ce) {
					s.SendError(ce.Code, ce.Message, m.Ref, m.CallID, ce.MetaCode)
				} else {
					h.log.Error("agents: handler", "type", m.Type, "err", err)
					s.SendError(CodeInternal, "internal error", m.Ref, m.CallID, 0)
				}
			}
		}
	}
}

// iceServers are the ICE servers for one session of agent.
func (h *Hub) iceServers(agent string) []ICEServer {
	if h.cfg.ICEServersFor != nil {
		if s := h.cfg.ICEServersFor(agent); s != nil {
			return s
		}
	}
	return h.cfg.ICEServers
}

func (h *Hub) writer(s *Session) {
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	var renew <-chan time.Time
	if h.cfg.ICEServersFor != nil && h.cfg.ICERenewEvery > 0 {
		rt := time.NewTicker(h.cfg.ICERenewEvery)
		defer rt.Stop()
		renew = rt.C
	}
	for {
		select {
		case <-renew:
			s.Send(ICEServersMsg{Type: TypeICEServers, ICEServers: h.iceServers(s.Agent)})
		case b := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				s.close()
				return
			}
		case <-t.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				s.close()
				return
			}
		case <-s.done:
			if code := s.closeCode.Load(); code != 0 {
				// Closed with a code: the queue is dropped, the close frame
				// is sent, and the reader gets closeGrace to read the
				// peer's answer.
				_ = s.conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(int(code), s.closeReason), time.Now().Add(time.Second))
				_ = s.conn.SetReadDeadline(time.Now().Add(closeGrace))
				return
			}
			// Flush what is queued (e.g. call_ended before a drain), then go.
			for {
				select {
				case b := <-s.out:
					_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
					if s.conn.WriteMessage(websocket.TextMessage, b) != nil {
						return
					}
				default:
					return
				}
			}
		}
	}
}

// Sessions returns the live sessions matching keep (nil: all).
func (h *Hub) Sessions(keep func(*Session) bool) []*Session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		if keep == nil || keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// SendAgent sends v to every session of agent; it reports whether any got it.
func (h *Hub) SendAgent(agent string, v any) bool {
	ss := h.Sessions(func(s *Session) bool { return s.Agent == agent })
	if len(ss) == 0 {
		return false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	for _, s := range ss {
		s.sendRaw(b)
	}
	return true
}

// Broadcast sends v to every session matching keep.
func (h *Hub) Broadcast(keep func(*Session) bool, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	for _, s := range h.Sessions(keep) {
		s.sendRaw(b)
	}
}

// AgentOnline reports whether agent has at least one session.
func (h *Hub) AgentOnline(agent string) bool {
	return len(h.Sessions(func(s *Session) bool { return s.Agent == agent })) > 0
}

// AvailableAgents returns the distinct agents with an available session.
func (h *Hub) AvailableAgents() map[string]bool {
	out := map[string]bool{}
	for _, s := range h.Sessions(func(s *Session) bool { return s.Presence() == Available }) {
		out[s.Agent] = true
	}
	return out
}

// Close closes every session (1001 going away) and waits for their
// goroutines. It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	ss := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for _, s := range ss {
		_ = s.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		s.close()
	}
	h.wg.Wait()
	return nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "s-" + hex.EncodeToString(b[:])
}
