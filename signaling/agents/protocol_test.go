package agents_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/callgw/callgw/signaling/agents"
)

func TestParseClientMessage(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name    string
		in      string
		wantErr string // substring of the error; "" = valid
		check   func(t *testing.T, m *agents.ClientMessage)
	}{
		// hello
		{name: "hello", in: `{"type":"hello","v":1,"token":"a.b.c","ref":"r1"}`,
			check: func(t *testing.T, m *agents.ClientMessage) {
				if m.V != 1 || m.Token != "a.b.c" || m.Ref != "r1" {
					t.Fatalf("%+v", m)
				}
			}},
		{name: "hello without token", in: `{"type":"hello","v":1}`, wantErr: "hello needs token"},
		{name: "hello v2 still parses (the hub refuses the version)", in: `{"type":"hello","v":2,"token":"t"}`,
			check: func(t *testing.T, m *agents.ClientMessage) {
				if m.V != 2 {
					t.Fatalf("v %d", m.V)
				}
			}},
		// presence
		{name: "presence available", in: `{"type":"presence","status":"available"}`,
			check: func(t *testing.T, m *agents.ClientMessage) {
				if m.Status != agents.Available {
					t.Fatalf("status %q", m.Status)
				}
			}},
		{name: "presence away", in: `{"type":"presence","status":"away"}`},
		{name: "presence busy", in: `{"type":"presence","status":"busy"}`, wantErr: "available or away"},
		{name: "presence without status", in: `{"type":"presence"}`, wantErr: "available or away"},
		// call_id messages
		{name: "accept", in: `{"type":"accept","call_id":"wacid.HBgMNDQ3NzAw=="}`},
		{name: "accept without call_id", in: `{"type":"accept"}`, wantErr: "accept needs call_id"},
		{name: "accept bad call_id chars", in: `{"type":"accept","call_id":"a b"}`, wantErr: "accept needs call_id"},
		{name: "accept call_id too long", in: `{"type":"accept","call_id":"` + long(257) + `"}`, wantErr: "accept needs call_id"},
		{name: "accept call_id at limit", in: `{"type":"accept","call_id":"` + long(256) + `"}`},
		{name: "reject", in: `{"type":"reject","call_id":"wacid.1"}`},
		{name: "reject without call_id", in: `{"type":"reject"}`, wantErr: "reject needs call_id"},
		{name: "resume", in: `{"type":"resume","call_id":"wacid.1"}`},
		{name: "resume without call_id", in: `{"type":"resume"}`, wantErr: "resume needs call_id"},
		{name: "hangup", in: `{"type":"hangup","call_id":"wacid.1"}`},
		{name: "hangup without call_id", in: `{"type":"hangup","call_id":""}`, wantErr: "hangup needs call_id"},
		// answer
		{name: "answer", in: `{"type":"answer","call_id":"wacid.1","sdp":"v=0\r\n"}`},
		{name: "answer without sdp", in: `{"type":"answer","call_id":"wacid.1"}`, wantErr: "answer needs sdp"},
		{name: "answer sdp over 32 KiB", in: `{"type":"answer","call_id":"wacid.1","sdp":"` + long(32<<10+1) + `"}`, wantErr: "answer needs sdp"},
		{name: "answer without call_id", in: `{"type":"answer","sdp":"v=0"}`, wantErr: "answer needs call_id"},
		// ice
		{name: "ice", in: `{"type":"ice","call_id":"wacid.1","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}}`,
			check: func(t *testing.T, m *agents.ClientMessage) {
				if m.Candidate == nil || m.Candidate.SDPMid == nil || *m.Candidate.SDPMid != "0" {
					t.Fatalf("candidate %+v", m.Candidate)
				}
			}},
		{name: "ice end of candidates", in: `{"type":"ice","call_id":"wacid.1","candidate":{"candidate":""}}`},
		{name: "ice without candidate", in: `{"type":"ice","call_id":"wacid.1"}`, wantErr: "ice needs candidate"},
		{name: "ice null candidate", in: `{"type":"ice","call_id":"wacid.1","candidate":null}`, wantErr: "ice needs candidate"},
		{name: "ice without call_id", in: `{"type":"ice","candidate":{"candidate":""}}`, wantErr: "ice needs call_id"},
		// dtmf
		{name: "dtmf", in: `{"type":"dtmf","call_id":"wacid.1","digits":"0123456789*#ABCDabcd"}`},
		{name: "dtmf bad digit", in: `{"type":"dtmf","call_id":"wacid.1","digits":"12x"}`, wantErr: "digits must be"},
		{name: "dtmf empty", in: `{"type":"dtmf","call_id":"wacid.1"}`, wantErr: "digits must be"},
		{name: "dtmf 33 digits", in: `{"type":"dtmf","call_id":"wacid.1","digits":"` + strings.Repeat("1", 33) + `"}`, wantErr: "digits must be"},
		{name: "dtmf 32 digits", in: `{"type":"dtmf","call_id":"wacid.1","digits":"` + strings.Repeat("1", 32) + `"}`},
		{name: "dtmf without call_id", in: `{"type":"dtmf","digits":"1"}`, wantErr: "dtmf needs call_id"},
		// to messages
		{name: "dial", in: `{"type":"dial","to":"+447700900123"}`},
		{name: "dial without to", in: `{"type":"dial"}`, wantErr: "dial needs to"},
		{name: "dial to over 32", in: `{"type":"dial","to":"` + long(33) + `"}`, wantErr: "to longer than 32"},
		{name: "dial from over 32", in: `{"type":"dial","to":"+1","from":"` + long(33) + `"}`, wantErr: "from longer than 32"},
		{name: "dial by call id", in: `{"type":"dial","call_id":"wacid.X"}`},
		{name: "dial by bad call id", in: `{"type":"dial","call_id":"bad id!"}`, wantErr: "bad call_id"},
		{name: "dial text over 1024", in: `{"type":"dial","to":"+1","text":"` + long(1025) + `"}`, wantErr: "text longer than 1024"},
		{name: "permission_query", in: `{"type":"permission_query","to":"+447700900123"}`},
		{name: "permission_query without to", in: `{"type":"permission_query"}`, wantErr: "permission_query needs to"},
		{name: "permission_request with text", in: `{"type":"permission_request","to":"+447700900123","text":"` + long(1024) + `"}`},
		{name: "permission_request without to", in: `{"type":"permission_request","text":"hi"}`, wantErr: "permission_request needs to"},
		{name: "permission_request text over 1024", in: `{"type":"permission_request","to":"+1","text":"` + long(1025) + `"}`, wantErr: "text longer than 1024"},
		// ping and generic rules
		{name: "ping", in: `{"type":"ping","ref":"p"}`},
		{name: "unknown fields ignored", in: `{"type":"ping","future":{"a":[1,2]}}`},
		{name: "ref at 64", in: `{"type":"ping","ref":"` + long(64) + `"}`},
		{name: "ref over 64", in: `{"type":"ping","ref":"` + long(65) + `"}`, wantErr: "ref longer than 64"},
		{name: "missing type", in: `{"ref":"x"}`, wantErr: "missing type"},
		{name: "unknown type", in: `{"type":"teleport"}`, wantErr: `unknown type "teleport"`},
		{name: "server type from client", in: `{"type":"welcome"}`, wantErr: "unknown type"},
		{name: "not JSON", in: `hello`, wantErr: "not JSON"},
		{name: "empty", in: ``, wantErr: "not JSON"},
		{name: "JSON array", in: `[1,2]`, wantErr: "not JSON"},
		{name: "wrong field type", in: `{"type":"hello","v":"1","token":"t"}`, wantErr: "not JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := agents.ParseClientMessage([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if m == nil {
					t.Fatal("nil message")
				}
				if tc.check != nil {
					tc.check(t, m)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v, want error %q", m, tc.wantErr)
			}
			if !errors.Is(err, agents.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q lacks %q", err, tc.wantErr)
			}
		})
	}
}

// TestParseClientMessageKeepsRefOnError: a message that is JSON but invalid
// still yields its ref and call_id, so the error reply can carry them.
func TestParseClientMessageKeepsRefOnError(t *testing.T) {
	m, err := agents.ParseClientMessage([]byte(`{"type":"dtmf","call_id":"wacid.9","digits":"x","ref":"r9"}`))
	if err == nil || m == nil || m.Ref != "r9" || m.CallID != "wacid.9" {
		t.Fatalf("m %+v err %v", m, err)
	}
	if m, err := agents.ParseClientMessage([]byte(`{`)); err == nil || m != nil {
		t.Fatalf("not JSON: m %+v err %v", m, err)
	}
}

var validTypes = map[string]bool{
	agents.TypeHello: true, agents.TypePresence: true, agents.TypeAccept: true, agents.TypeReject: true,
	agents.TypeAnswer: true, agents.TypeICE: true, agents.TypeResume: true, agents.TypeHangup: true,
	agents.TypeDTMF: true, agents.TypeDial: true, agents.TypePermissionQuery: true,
	agents.TypePermissionRequest: true, agents.TypePing: true,
}

func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","v":1,"token":"a.b.c"}`,
		`{"type":"presence","status":"available","ref":"1"}`,
		`{"type":"accept","call_id":"wacid.1"}`,
		`{"type":"answer","call_id":"wacid.1","sdp":"v=0"}`,
		`{"type":"ice","call_id":"wacid.1","candidate":{"candidate":"","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"dtmf","call_id":"wacid.1","digits":"12#"}`,
		`{"type":"dial","to":"+447700900123","text":"hi"}`,
		`{"type":"permission_request","to":"+1"}`,
		`{"type":"ping"}`,
		`{"type":"teleport"}`,
		`{"type":null,"candidate":[]}`,
		`{"type":"ice","call_id":"x","candidate":{"sdpMLineIndex":70000}}`,
		`[]`, `null`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := agents.ParseClientMessage(b)
		if err != nil {
			if !errors.Is(err, agents.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		// Accepted: it must satisfy the documented rules.
		if m == nil || !validTypes[m.Type] {
			t.Fatalf("accepted %+v", m)
		}
		if len(m.Ref) > 64 {
			t.Fatalf("accepted ref of %d bytes", len(m.Ref))
		}
		switch m.Type {
		case agents.TypeHello:
			if m.Token == "" {
				t.Fatal("hello without token accepted")
			}
		case agents.TypePresence:
			if m.Status != agents.Available && m.Status != agents.Away {
				t.Fatalf("presence %q accepted", m.Status)
			}
		case agents.TypeAccept, agents.TypeReject, agents.TypeResume, agents.TypeHangup,
			agents.TypeAnswer, agents.TypeICE, agents.TypeDTMF:
			if m.CallID == "" || len(m.CallID) > 256 {
				t.Fatalf("%s with call_id %q accepted", m.Type, m.CallID)
			}
		case agents.TypeDial, agents.TypePermissionQuery, agents.TypePermissionRequest:
			if m.To == "" || len(m.To) > 32 || len(m.Text) > 1024 {
				t.Fatalf("%s to %q accepted", m.Type, m.To)
			}
		}
		// What was accepted re-encodes and parses to the same message.
		re, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := agents.ParseClientMessage(re); err != nil {
			t.Fatalf("re-encoded %s rejected: %v", re, err)
		}
	})
}
