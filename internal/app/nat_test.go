package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/turncred"
	"github.com/callgw/callgw/signaling/agents"
)

// With CALLGW_TURN_SECRET every agent session gets its own REST-API TURN
// credentials after the static ICE servers.
func TestAgentsGetTURNCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const sec = "turn-secret-0123456789abcdef"
	ta := startApp(t, "-ice-servers", `[{"urls":["stun:stun.example.com:3478"]}]`, "-turn-secret", sec,
		"-turn-urls", "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349", "-turn-ttl", "2h")
	tok, err := ta.AgentToken("alice", agents.RoleAgent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Dial(ctx, "ws"+strings.TrimPrefix(ta.URL, "http")+"/ws/agent", tok, agentclient.Options{ServerICE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ice := c.ICEServers()
	if len(ice) != 2 || ice[0].URLs[0] != "stun:stun.example.com:3478" {
		t.Fatalf("ice servers %+v", ice)
	}
	turn := ice[1]
	if len(turn.URLs) != 2 || turn.URLs[1] != "turns:turn.example.com:5349" {
		t.Fatalf("turn urls %v", turn.URLs)
	}
	user := turn.Username
	if !strings.HasSuffix(user, ":alice") {
		t.Fatalf("username %q", user)
	}
	exp, err := turncred.Expiry(user)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Fatalf("credentials valid for %v, want 2h", d)
	}
	if turn.Credential != turncred.Sign(sec, user) {
		t.Fatal("credential is not HMAC-SHA1(secret, username)")
	}
}

func TestReadyzVerbose(t *testing.T) {
	ta := startApp(t)
	resp, err := http.Get(ta.URL + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	// Demo wiring: the simulator is not a Graph URL, no STUN/TURN; the webhook
	// answers its own verification over plain http (a warning).
	for _, want := range []string{"[ok  ] ready", "[ok  ] redis", "[skip] public address", "[skip] media port reachable", "[ok  ] graph api",
		"[warn] webhook verification", "all checks passed"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz?verbose lacks %q:\n%s", want, body)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	plain, err := http.Get(ta.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if strings.TrimSpace(string(pb)) != "ready" {
		t.Fatalf("plain /readyz changed: %q", pb)
	}
}

func TestDoctorConfig(t *testing.T) {
	cfg, err := LoadConfig([]string{"-public-ip", "203.0.113.10", "-udp-port", "40000", "-public-url", "https://gw.example.com/",
		"-ice-servers", `[{"urls":["stun:s:3478","turn:static:3478"],"username":"u","credential":"p"}]`,
		"-turn-secret", "turn-secret-0123456789abcdef", "-turn-urls", "turn:t:3478"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cfg.DoctorConfig()
	if err != nil {
		t.Fatal(err)
	}
	if d.STUN != "stun:s:3478" || d.UDPPort != 40000 || d.PublicIPs[0] != "203.0.113.10" ||
		d.WebhookURL != "https://gw.example.com/webhooks/whatsapp" || d.ListenAddr != ":8080" {
		t.Fatalf("doctor config %+v", d)
	}
	if len(d.TURN) != 2 || d.TURN[0].Username != "u" || !strings.HasSuffix(d.TURN[1].Username, ":callgw-doctor") {
		t.Fatalf("turn servers %+v", d.TURN)
	}
}
