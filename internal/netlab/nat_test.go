package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/internal/netlab"
	"github.com/callgw/callgw/internal/turncred"
	"github.com/callgw/callgw/signaling/agents"
)

// Addresses of the public services (in the Internet namespace).
const (
	metaIP   = "198.18.0.10"
	turnIP   = "198.18.0.20"
	metaPort = "8081"

	gwUDPPort  = 40000
	gwHTTPPort = 8080

	turnSecret  = "netlab-turn-secret-0123456789"
	tokenSecret = "netlab-token-secret-0123456789"
)

// world is the whole topology: Meta and coturn on the Internet, the gateway
// behind a 1:1 NAT, agents behind the other kinds of NAT.
type world struct {
	lab   *netlab.Lab
	in    *netlab.Internet
	gw    *netlab.Site
	sites map[netlab.NATKind]*netlab.Site
	turn  *netlab.TURN
	meta  *netlab.Proc
}

func buildWorld(t *testing.T, ctx context.Context) *world {
	t.Helper()
	lab := netlab.New(t)
	w := &world{lab: lab, sites: map[netlab.NATKind]*netlab.Site{}}
	w.in = lab.NewInternet(metaIP, turnIP)
	w.gw = w.in.AddSite("gw", netlab.NATOneToOne, netlab.OneToOne{UDPPorts: []int{gwUDPPort}, TCPPorts: []int{gwHTTPPort}})
	for _, k := range []netlab.NATKind{netlab.NATEndpointIndependent, netlab.NATSymmetric, netlab.NATUDPBlocked} {
		w.sites[k] = w.in.AddSite(map[netlab.NATKind]string{netlab.NATEndpointIndependent: "eim",
			netlab.NATSymmetric: "sym", netlab.NATUDPBlocked: "blk"}[k], k, netlab.OneToOne{})
	}
	w.turn = lab.StartTURN(ctx, w.in.NS, netlab.TURNConfig{IP: turnIP, Secret: turnSecret})
	w.meta = lab.Role(w.in.NS, "meta", w.secrets(map[string]string{
		"META_LISTEN": metaIP + ":" + metaPort,
		"WEBHOOK_URL": fmt.Sprintf("http://%s:%d/webhooks/whatsapp", w.gw.PublicIP, gwHTTPPort),
	}))
	if _, err := w.meta.Wait(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) secrets(extra map[string]string) map[string]string {
	m := map[string]string{
		"CALLGW_APP_SECRET": "netlab-app-secret", "CALLGW_VERIFY_TOKEN": "netlab-verify-token",
		"CALLGW_ACCESS_TOKEN": "netlab-access-token", "CALLGW_PHONE_NUMBER_ID": "100000000000001",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// gatewayEnv is a production-like configuration: advertised public address
// publicIP, one UDP port, STUN for agents and TURN credentials per agent.
func (w *world) gatewayEnv(publicIP string) map[string]string {
	return w.secrets(map[string]string{
		"CALLGW_ADDR":          fmt.Sprintf(":%d", gwHTTPPort),
		"CALLGW_PUBLIC_URL":    fmt.Sprintf("http://%s:%d", w.gw.PublicIP, gwHTTPPort),
		"CALLGW_PUBLIC_IP":     publicIP,
		"CALLGW_UDP_PORT":      fmt.Sprint(gwUDPPort),
		"CALLGW_GRAPH_URL":     "http://" + metaIP + ":" + metaPort,
		"CALLGW_TOKEN_SECRET":  tokenSecret,
		"CALLGW_ICE_SERVERS":   `[{"urls":["stun:` + turnIP + `:3478"]}]`,
		"CALLGW_TURN_SECRET":   turnSecret,
		"CALLGW_TURN_URLS":     "turn:" + turnIP + ":3478?transport=udp,turn:" + turnIP + ":3478?transport=tcp,turns:" + turnIP + ":5349?transport=tcp",
		"SSL_CERT_FILE":        w.turn.CertFile, // the doctor trusts coturn's self-signed certificate
		"CALLGW_TURN_TTL":      "1h",
		"CALLGW_AGENT_GRACE":   "15s", // a relayed agent leg can take several seconds under -race
		"CALLGW_DRAIN_TIMEOUT": "1s",
		"CALLGW_LOG_FORMAT":    "text",
		"CALLGW_LOG_LEVEL":     "warn",
	})
}

func (w *world) startGateway(t *testing.T, ctx context.Context, publicIP string) *netlab.Proc {
	t.Helper()
	p := w.lab.Role(w.gw.Host, "gateway", w.gatewayEnv(publicIP))
	if _, err := p.Wait(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentICE is how an agent process gets its ICE servers.
type agentICE struct {
	static    []webrtc.ICEServer
	server    bool // the gateway's (welcome: STUN + REST-API TURN credentials)
	relayOnly bool
}

// restTURN issues REST-API credentials the way the gateway does, for one URL.
func restTURN(t *testing.T, url string) webrtc.ICEServer {
	t.Helper()
	iss, err := turncred.New(turncred.Config{Secret: turnSecret, URLs: []string{url}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Issue("netlab-agent")
	return webrtc.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Credential}
}

type callResult struct {
	agent, meta netlab.Msg
}

// call places a user-initiated call from Meta and has an agent in site take
// it; it returns what both ends reported, then hangs up.
func (w *world) call(t *testing.T, ctx context.Context, site *netlab.Site, ice agentICE) callResult {
	t.Helper()
	tok, err := agents.IssueToken([]byte(tokenSecret), "agent-"+site.Host.Tag, agents.RoleAgent, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AGENT_WS":    fmt.Sprintf("ws://%s:%d/ws/agent", w.gw.PublicIP, gwHTTPPort),
		"AGENT_TOKEN": tok,
		// Pion's TURN/TLS client verifies with the system roots: trust
		// coturn's self-signed certificate.
		"SSL_CERT_FILE": w.turn.CertFile,
	}
	if ice.static != nil {
		b, _ := json.Marshal(ice.static)
		env["AGENT_ICE"] = string(b)
	}
	if ice.server {
		env["AGENT_SERVER_ICE"] = "1"
	}
	if ice.relayOnly {
		env["AGENT_RELAY_ONLY"] = "1"
	}
	ag := w.lab.Role(site.Host, "agent", env)
	defer ag.Stop()
	if _, err := ag.Wait(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	if err := w.meta.Send(netlab.Msg{"op": "call"}); err != nil {
		t.Fatal(err)
	}
	placed, err := w.meta.Wait(ctx, "placed")
	if err != nil || placed["err"] != "" {
		t.Fatalf("place call: %v %v", err, placed)
	}
	id := placed["id"]
	_ = ag.Send(netlab.Msg{"op": "take", "id": id})
	_ = w.meta.Send(netlab.Msg{"op": "check", "id": id})
	var r callResult
	if r.agent, err = ag.Wait(ctx, "result"); err != nil {
		t.Fatal(err)
	}
	if r.meta, err = w.meta.Wait(ctx, "heard"); err != nil {
		t.Fatal(err)
	}
	_ = w.meta.Send(netlab.Msg{"op": "hangup", "id": id})
	if _, err := w.meta.Wait(ctx, "hungup"); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBehindNATs first runs the doctor (doctorCases), then places real
// calls through real NATs (callCases): Meta (ICE-lite, host candidates) and
// coturn on a public segment, the gateway behind a 1:1 NAT that forwards one
// UDP port, agents behind each kind of NAT. Tones are checked both ways.
func TestBehindNATs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	w := buildWorld(t, ctx) // one topology for everything: building it costs seconds
	t.Run("doctor", func(t *testing.T) { doctorCases(t, ctx, w) })
	t.Run("calls", func(t *testing.T) { callCases(t, ctx, w) })
}

func callCases(t *testing.T, ctx context.Context, w *world) {
	gw := w.startGateway(t, ctx, w.gw.PublicIP)
	if st, body := w.fetch(t, ctx, w.readyzVerbose()); st != "200" || !strings.Contains(body, "[ok  ] public address") {
		t.Fatalf("/readyz?verbose of a well configured gateway: %s\n%s", st, body)
	}

	stun := webrtc.ICEServer{URLs: []string{"stun:" + turnIP + ":3478"}}
	tests := []struct {
		name      string
		kind      netlab.NATKind
		ice       agentICE
		connected bool
		local     string // the agent's selected candidate type ("" = any)
	}{
		{"endpoint-independent NAT with STUN", netlab.NATEndpointIndependent, agentICE{static: []webrtc.ICEServer{stun}}, true, ""},
		{"symmetric NAT without any ICE server", netlab.NATSymmetric, agentICE{}, true, ""},
		{"symmetric NAT with the gateway's STUN and TURN", netlab.NATSymmetric, agentICE{server: true}, true, ""},
		{"symmetric NAT through TURN over UDP only", netlab.NATSymmetric,
			agentICE{static: []webrtc.ICEServer{restTURN(t, "turn:"+turnIP+":3478?transport=udp")}, relayOnly: true}, true, "relay"},
		{"UDP blocked without TURN", netlab.NATUDPBlocked, agentICE{static: []webrtc.ICEServer{stun}}, false, ""},
		{"UDP blocked with the gateway's TURN over TCP and TLS", netlab.NATUDPBlocked, agentICE{server: true}, true, "relay"},
		{"UDP blocked through TURN over TLS only", netlab.NATUDPBlocked,
			agentICE{static: []webrtc.ICEServer{restTURN(t, "turns:"+turnIP+":5349?transport=tcp")}, relayOnly: true}, true, "relay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.call(t, ctx, w.sites[tt.kind], tt.ice)
			t.Logf("agent: %v; meta: %v", r.agent, r.meta)
			if got := r.agent["connected"] == "true"; got != tt.connected {
				t.Fatalf("agent leg connected = %v, want %v (%v)", got, tt.connected, r.agent)
			}
			if !tt.connected {
				// What the agent's leg saw, as callgw_media_failures_total would say it.
				if r.agent["cause"] != "nothing_from_peer" {
					t.Errorf("agent leg diagnosed %q, want nothing_from_peer (%s)", r.agent["cause"], r.agent["diagnosis"])
				}
				if r.meta["tone"] == "true" {
					t.Fatalf("the user heard the agent over a leg that never connected: %v", r.meta)
				}
				return
			}
			if tt.local != "" && r.agent["local"] != tt.local {
				t.Errorf("agent's selected candidate is %s, want %s", r.agent["local"], tt.local)
			}
			if r.agent["tone"] != "true" {
				t.Errorf("agent heard %s Hz, want 440 (%v)", r.agent["freq"], r.agent)
			}
			if r.meta["tone"] != "true" {
				t.Errorf("user heard %s Hz, want 1000 (%v)", r.meta["freq"], r.meta)
			}
		})
	}

	// A gateway that advertises the wrong public address fails the way it
	// fails in the field: agents' checks go nowhere, no audio.
	t.Run("wrong CALLGW_PUBLIC_IP", func(t *testing.T) {
		gw.Stop()
		w.startGateway(t, ctx, "198.18.1.99")
		r := w.call(t, ctx, w.sites[netlab.NATEndpointIndependent], agentICE{static: []webrtc.ICEServer{stun}})
		t.Logf("agent: %v; meta: %v", r.agent, r.meta)
		if r.agent["connected"] == "true" && r.agent["tone"] == "true" {
			t.Fatalf("a gateway with a wrong public address carried audio: %v", r.agent)
		}
		if r.agent["cause"] != "nothing_from_peer" {
			t.Errorf("agent leg diagnosed %q, want nothing_from_peer (%s)", r.agent["cause"], r.agent["diagnosis"])
		}
		if strings.Contains(r.meta["tone"], "true") {
			t.Fatalf("the user heard the agent: %v", r.meta)
		}
		// The doctor names it, on the running gateway too.
		st, body := w.fetch(t, ctx, w.readyzVerbose())
		if st != "503" || !strings.Contains(body, "CALLGW_PUBLIC_IP is 198.18.1.99 but the STUN server sees this host as "+w.gw.PublicIP) {
			t.Fatalf("/readyz?verbose: %s\n%s", st, body)
		}
	})
}

func (w *world) readyzVerbose() string {
	return fmt.Sprintf("http://%s:%d/readyz?verbose", w.gw.PublicIP, gwHTTPPort)
}

// fetch GETs url from the Internet namespace.
func (w *world) fetch(t *testing.T, ctx context.Context, url string) (status, body string) {
	t.Helper()
	p := w.lab.Role(w.in.NS, "fetch", map[string]string{"FETCH_URL": url})
	defer p.Stop()
	m, err := p.Wait(ctx, "fetched")
	if err != nil {
		t.Fatal(err)
	}
	return m["status"], m["body"]
}
