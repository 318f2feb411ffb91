package agents_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/signaling/agents"
)

// Per-session ICE servers (time-limited TURN credentials) come in welcome and
// are pushed again in ice_servers messages while the session lives.
func TestICEServersPerSessionAndRenewed(t *testing.T) {
	var n atomic.Int64
	e := startHub(t, agents.HubConfig{
		ICEServers: []agents.ICEServer{{URLs: []string{"stun:static"}}},
		ICEServersFor: func(agent string) []agents.ICEServer {
			i := n.Add(1)
			return []agents.ICEServer{{URLs: []string{"turn:t"}, Username: agent + "-" + string(rune('0'+i)), Credential: "c"}}
		},
		ICERenewEvery: 50 * time.Millisecond,
	})
	c, w := e.login(t, "alice")
	if len(w.ICEServers) != 1 || w.ICEServers[0].Username != "alice-1" {
		t.Fatalf("welcome ice servers %+v", w.ICEServers)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		var m agents.ICEServersMsg
		readInto(t, c, &m)
		if m.Type != agents.TypeICEServers {
			continue
		}
		if len(m.ICEServers) != 1 || m.ICEServers[0].Username != "alice-2" {
			t.Fatalf("renewed ice servers %+v", m.ICEServers)
		}
		break
	}
}

func TestICEServersStaticWithoutHook(t *testing.T) {
	e := startHub(t, agents.HubConfig{ICEServers: []agents.ICEServer{{URLs: []string{"stun:static"}}}})
	_, w := e.login(t, "bob")
	if len(w.ICEServers) != 1 || w.ICEServers[0].URLs[0] != "stun:static" {
		t.Fatalf("welcome ice servers %+v", w.ICEServers)
	}
}
