package agents_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/callgw/callgw/signaling/agents"
)

// fuzzHandler answers like the controller does in kind: a coded error, a
// plain error, or a reply; it never blocks.
type fuzzHandler struct{}

func (fuzzHandler) Welcome(*agents.Session) []agents.CallInfo { return nil }
func (fuzzHandler) Handle(_ context.Context, s *agents.Session, m *agents.ClientMessage) error {
	switch m.Type {
	case agents.TypeDial:
		return agents.Errorf(agents.CodeInvalidNumber, "not a valid phone number", nil)
	case agents.TypeAccept:
		return errors.New("read tcp 127.0.0.1:1: i/o timeout") // an internal failure
	}
	s.Send(map[string]string{"type": "handled", "ref": m.Ref})
	return nil
}
func (fuzzHandler) PresenceChanged(*agents.Session) {}
func (fuzzHandler) Closed(*agents.Session)          {}

var protocolCodes = map[string]bool{
	agents.CodeBadMessage: true, agents.CodeUnauthenticated: true, agents.CodeUnsupportedVersion: true,
	agents.CodeOutOfTurn: true, agents.CodeUnknownCall: true, agents.CodeCallTaken: true, agents.CodeNotYourCall: true,
	agents.CodeNotAvailable: true, agents.CodeInvalidSDP: true, agents.CodeInvalidNumber: true, agents.CodeMetaError: true,
	agents.CodeUnavailable: true, agents.CodeInternal: true,
}

// FuzzHubSession drives the hub's message loop: after hello, the fuzzed
// frames (split at newlines; binary when binary is set), then a ping. The
// session must survive any frame (a bad one is answered with an error
// message, never a disconnect), every answer must be a JSON message with a
// type, errors must carry a documented code and no internal text, and the
// closing ping must be answered.
func FuzzHubSession(f *testing.F) {
	for _, s := range []string{
		`{"type":"presence","status":"available","ref":"1"}`,
		`{"type":"presence","status":"busy"}`,
		`{"type":"hello","v":1,"token":"a.b.c"}`,
		`{"type":"dial","to":"+447700900123","ref":"d"}`,
		`{"type":"accept","call_id":"wacid.1","ref":"a"}`,
		`{"type":"ice","call_id":"wacid.1","candidate":{"candidate":"","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"dtmf","call_id":"wacid.1","digits":"12#"}` + "\n" + `{"type":"ping","ref":"p"}`,
		`{"type":"teleport"}`, `[]`, `null`, `"x"`, `{`, "\xff\xfe",
		`{"type":"answer","call_id":"wacid.1","sdp":"v=0"}`,
		`{"type":"ping","ref":"` + strings.Repeat("r", 65) + `"}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte{1, 2, 3}, true)
	hub, err := agents.NewHub(agents.HubConfig{TokenSecret: testSecret}, fuzzHandler{}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	f.Cleanup(func() {
		_ = hub.Close()
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	tok, err := agents.IssueToken(testSecret, "fuzz", agents.RoleAgent, time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, binary bool) {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetWriteDeadline(time.Now().Add(wait))
		if err := c.WriteJSON(map[string]any{"type": "hello", "v": 1, "token": tok}); err != nil {
			t.Fatal(err)
		}
		mt := websocket.TextMessage
		if binary {
			mt = websocket.BinaryMessage
		}
		frames := strings.Split(string(in), "\n")
		if len(frames) > 16 {
			frames = frames[:16]
		}
		for _, fr := range frames {
			if err := c.WriteMessage(mt, []byte(fr)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WriteJSON(map[string]any{"type": "ping", "ref": "fuzz-end"}); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("session ended before the closing pong: %v (input %q)", err, in)
			}
			var m struct {
				Type    string `json:"type"`
				Ref     string `json:"ref"`
				Code    string `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(b, &m); err != nil || m.Type == "" {
				t.Fatalf("answer %q", b)
			}
			if m.Type == agents.TypeError {
				if !protocolCodes[m.Code] || m.Message == "" {
					t.Fatalf("error %s", b)
				}
				if strings.Contains(m.Message, "127.0.0.1") || strings.Contains(m.Message, "i/o timeout") {
					t.Fatalf("error leaks an internal text: %s", b)
				}
			}
			if m.Type == "pong" && m.Ref == "fuzz-end" {
				return
			}
		}
	})
}
