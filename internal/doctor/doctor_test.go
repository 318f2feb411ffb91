package doctor_test

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"go.uber.org/goleak"

	"github.com/callgw/callgw/internal/doctor"
	"github.com/callgw/callgw/internal/turncred"
	"github.com/callgw/callgw/metasim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "doctor-test-secret-0123456789"

// startTURN runs a Pion TURN server on loopback (UDP and TCP on one port)
// that checks TURN REST API credentials against secret.
func startTURN(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}
	}
	srv, err := turn.NewServer(turn.ServerConfig{Realm: "callgw.test",
		AuthHandler:       turn.LongTermTURNRESTAuthHandler(secret, nil),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: ln, RelayAddressGenerator: gen()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return "127.0.0.1:" + strconv.Itoa(port)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestRunOnLoopback(t *testing.T) {
	turnAddr := startTURN(t)
	sim, err := metasim.New(metasim.Config{AppSecret: "app-secret", AccessToken: "good-token",
		VerifyToken: "verify", WebhookURL: "http://127.0.0.1:1/webhooks/whatsapp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	graph := httptest.NewServer(sim.GraphHandler())
	t.Cleanup(graph.Close)

	creds := func(sec string, urls ...string) []doctor.TURNServer {
		iss, err := turncred.New(turncred.Config{Secret: sec, URLs: urls})
		if err != nil {
			t.Fatal(err)
		}
		c := iss.Issue("doctor-test")
		var out []doctor.TURNServer
		for _, u := range c.URLs {
			out = append(out, doctor.TURNServer{URL: u, Username: c.Username, Credential: c.Credential})
		}
		return out
	}
	good := func() doctor.Config {
		listen := freeTCPAddr(t)
		return doctor.Config{PublicIPs: []string{"127.0.0.1"}, UDPPort: freeUDPPort(t),
			TURN:     creds(secret, "turn:"+turnAddr+"?transport=udp", "turn:"+turnAddr+"?transport=tcp"),
			GraphURL: graph.URL, GraphVersion: "v23.0", AccessToken: "good-token", PhoneNumberID: "100000000000001",
			WebhookURL: "http://" + listen + "/webhooks/whatsapp", VerifyToken: "verify", ListenAddr: listen,
			Timeout: time.Second}
	}
	tests := []struct {
		name string
		mod  func(*doctor.Config)
		want map[string]doctor.Status
		says map[string]string
	}{
		{"everything right", func(*doctor.Config) {}, map[string]doctor.Status{
			doctor.CheckPublicAddress: doctor.StatusOK, doctor.CheckTURN: doctor.StatusOK,
			doctor.CheckUDPReachable: doctor.StatusOK, doctor.CheckGraph: doctor.StatusOK,
			doctor.CheckWebhook: doctor.StatusWarn}, nil},
		{"public address differs", func(c *doctor.Config) { c.PublicIPs = []string{"192.0.2.1"} },
			map[string]doctor.Status{doctor.CheckPublicAddress: doctor.StatusFail},
			map[string]string{doctor.CheckPublicAddress: "CALLGW_PUBLIC_IP=127.0.0.1"}},
		{"wrong turn secret", func(c *doctor.Config) { c.TURN = creds("another-secret-0123456789", "turn:"+turnAddr) },
			map[string]doctor.Status{doctor.CheckTURN: doctor.StatusFail, doctor.CheckUDPReachable: doctor.StatusSkipped},
			map[string]string{doctor.CheckTURN: "static-auth-secret"}},
		{"no turn", func(c *doctor.Config) { c.TURN = nil; c.STUN = "stun:" + turnAddr },
			map[string]doctor.Status{doctor.CheckPublicAddress: doctor.StatusOK, doctor.CheckTURN: doctor.StatusSkipped,
				doctor.CheckUDPReachable: doctor.StatusSkipped}, nil},
		{"stun server silent", func(c *doctor.Config) { c.TURN = nil; c.STUN = "127.0.0.1:9" },
			map[string]doctor.Status{doctor.CheckPublicAddress: doctor.StatusFail}, nil},
		{"media port owned by callgw", func(c *doctor.Config) { c.MediaPortInUse = true },
			map[string]doctor.Status{doctor.CheckUDPReachable: doctor.StatusSkipped, doctor.CheckPublicAddress: doctor.StatusOK}, nil},
		{"no fixed port", func(c *doctor.Config) { c.UDPPort = 0 },
			map[string]doctor.Status{doctor.CheckUDPReachable: doctor.StatusWarn}, nil},
		{"bad token", func(c *doctor.Config) { c.AccessToken = "nope" },
			map[string]doctor.Status{doctor.CheckGraph: doctor.StatusFail},
			map[string]string{doctor.CheckGraph: "CALLGW_ACCESS_TOKEN"}},
		{"demo mode", func(c *doctor.Config) { c.AccessToken = ""; c.GraphURL = "" },
			map[string]doctor.Status{doctor.CheckGraph: doctor.StatusSkipped}, nil},
		{"webhook wrong verify token", func(c *doctor.Config) {
			// Someone else serves the URL with another token.
			c.ListenAddr = ""
			c.WebhookURL = graph.URL + "/webhooks/whatsapp"
		}, map[string]doctor.Status{doctor.CheckWebhook: doctor.StatusFail}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mod(&c)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rep := doctor.Run(ctx, c)
			var buf bytes.Buffer
			rep.Write(&buf)
			t.Log("\n" + buf.String())
			for name, st := range tt.want {
				r, ok := rep.Get(name)
				if !ok || r.Status != st {
					t.Errorf("%s = %v (%s), want %v", name, r.Status, r.Detail, st)
				}
			}
			for name, sub := range tt.says {
				r, _ := rep.Get(name)
				if !strings.Contains(r.Detail+" "+r.Fix, sub) {
					t.Errorf("%s says %q / %q, want %q in it", name, r.Detail, r.Fix, sub)
				}
			}
			failed := false
			for _, r := range rep {
				failed = failed || r.Status == doctor.StatusFail
			}
			if rep.OK() == failed || (rep.Err() == nil) == failed {
				t.Errorf("OK() = %v, Err() = %v with failed = %v", rep.OK(), rep.Err(), failed)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[doctor.Status]string{doctor.StatusUnknown: "unknown", doctor.StatusOK: "ok",
		doctor.StatusWarn: "warn", doctor.StatusFail: "FAIL", doctor.StatusSkipped: "skip"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(st), st.String(), want)
		}
	}
}
