package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/signaling/agents"
)

const secret = "0123456789abcdef-cli-test"

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// runCLI runs the command with a deadline: a configuration that wrongly
// passed validation would start serving and never return.
func runCLI(t *testing.T, args []string, getenv func(string) string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(args, getenv, &out, &errb) }()
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("callgw %v did not return", args)
	}
	return code, out.String(), errb.String()
}

func TestTokenCommand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   func(string) string
		agent string
		role  agents.Role
		ttl   time.Duration
	}{
		{"agent from env secret", []string{"token", "--agent", "a"}, env("CALLGW_TOKEN_SECRET", secret), "a", agents.RoleAgent, 12 * time.Hour},
		{"supervisor with ttl", []string{"token", "--agent", "sup", "--role", "supervisor", "--ttl", "1h"}, env("CALLGW_TOKEN_SECRET", secret), "sup", agents.RoleSupervisor, time.Hour},
		{"secret by flag", []string{"token", "--agent", "b", "--token-secret", secret}, env(), "b", agents.RoleAgent, 12 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			code, out, errOut := runCLI(t, tc.args, tc.env)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			tok := strings.TrimSpace(out)
			c, err := agents.VerifyToken([]byte(secret), tok, time.Now())
			if err != nil {
				t.Fatalf("token %q: %v", tok, err)
			}
			if c.Subject != tc.agent || c.Role != tc.role {
				t.Fatalf("claims %+v", c)
			}
			if exp := c.ExpiresAt.Time; exp.Before(before.Add(tc.ttl-2*time.Second)) || exp.After(time.Now().Add(tc.ttl+time.Second)) {
				t.Fatalf("expires %v, want about now+%v", exp, tc.ttl)
			}
			if _, err := agents.VerifyToken([]byte("another-secret-0123456"), tok, time.Now()); err == nil {
				t.Fatal("token verifies with another secret")
			}
		})
	}
}

func TestTokenCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"missing secret", []string{"token", "--agent", "a"}, env(), "CALLGW_TOKEN_SECRET (or --token-secret) is required"},
		{"missing agent", []string{"token"}, env("CALLGW_TOKEN_SECRET", secret), "--agent is required"},
		{"short secret", []string{"token", "--agent", "a"}, env("CALLGW_TOKEN_SECRET", "short"), "at least 16 bytes"},
		{"unknown role", []string{"token", "--agent", "a", "--role", "admin"}, env("CALLGW_TOKEN_SECRET", secret), `unknown role "admin"`},
		{"ttl too long", []string{"token", "--agent", "a", "--ttl", "800h"}, env("CALLGW_TOKEN_SECRET", secret), "--ttl must be between"},
		{"negative ttl", []string{"token", "--agent", "a", "--ttl", "-1h"}, env("CALLGW_TOKEN_SECRET", secret), "--ttl must be between"},
		{"unknown flag", []string{"token", "--nope"}, env("CALLGW_TOKEN_SECRET", secret), "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args, tc.env)
			if code != 1 {
				t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut)
			}
			if out != "" {
				t.Fatalf("stdout %q: no token may be printed", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q lacks %q", errOut, tc.want)
			}
		})
	}
}

func TestMetricsCommand(t *testing.T) {
	code, out, errOut := runCLI(t, []string{"metrics"}, env())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	names := strings.Fields(out)
	for _, want := range []string{"callgw_webhooks_total", "callgw_calls_active", "callgw_agents_connected",
		"callgw_agents_available", "callgw_ready", "callgw_permission_degraded_decisions_total",
		"callgw_call_setup_duration_seconds"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("metrics lack %s", want)
		}
	}
	for i, n := range names {
		if i > 0 && names[i-1] >= n {
			t.Fatalf("not sorted or duplicated: %s then %s", names[i-1], n)
		}
	}
}

func TestBadConfigurationExits2(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  func(string) string
		want []string
	}{
		{"udp ports not a range", nil, env("CALLGW_UDP_PORTS", "abc"), []string{"CALLGW_UDP_PORTS", `"abc"`}},
		{"udp ports reversed", nil, env("CALLGW_UDP_PORTS", "41000-40000"), []string{"CALLGW_UDP_PORTS"}},
		{"udp port not a number", nil, env("CALLGW_UDP_PORT", "abc"), []string{"CALLGW_UDP_PORT"}},
		{"ring timeout over 30s", nil, env("CALLGW_RING_TIMEOUT", "90s"), []string{"CALLGW_RING_TIMEOUT", "30s"}},
		{"ring timeout not a duration", nil, env("CALLGW_RING_TIMEOUT", "soon"), []string{"CALLGW_RING_TIMEOUT"}},
		{"real Graph URL without secrets", nil, env("CALLGW_GRAPH_URL", "https://graph.facebook.com"),
			[]string{"CALLGW_ACCESS_TOKEN", "CALLGW_APP_SECRET", "CALLGW_VERIFY_TOKEN", "CALLGW_PHONE_NUMBER_ID", "CALLGW_TOKEN_SECRET"}},
		{"access token alone", nil, env("CALLGW_ACCESS_TOKEN", "x"), []string{"CALLGW_APP_SECRET"}},
		{"short token secret", nil, env("CALLGW_TOKEN_SECRET", "short"), []string{"CALLGW_TOKEN_SECRET", "16"}},
		{"log level", nil, env("CALLGW_LOG_LEVEL", "loud"), []string{"CALLGW_LOG_LEVEL"}},
		{"ice servers", nil, env("CALLGW_ICE_SERVERS", `[{"urls":["http://x"]}]`), []string{"CALLGW_ICE_SERVERS"}},
		{"turn secret without urls", nil, env("CALLGW_TURN_SECRET", "0123456789abcdef0123"), []string{"CALLGW_TURN_SECRET", "turn:"}},
		{"turn urls without secret", nil, env("CALLGW_TURN_URLS", "turn:t.example.com"), []string{"CALLGW_TURN_SECRET", "secret"}},
		{"turn ttl too short", nil, env("CALLGW_TURN_SECRET", "0123456789abcdef0123", "CALLGW_TURN_URLS", "turn:t", "CALLGW_TURN_TTL", "1m"), []string{"CALLGW_TURN_TTL", "ttl"}},
		{"api key role", nil, env("CALLGW_API_KEYS", "0123456789abcdef0123:root"), []string{"role", "root"}},
		{"sentinel without addrs", nil, env("CALLGW_REDIS_SENTINEL_MASTER", "m"), []string{"CALLGW_REDIS_ADDRS"}},
		{"flag wins and is checked", []string{"-ring-timeout", "0s"}, env(), []string{"CALLGW_RING_TIMEOUT"}},
		{"serve subcommand", []string{"serve", "-udp-ports", "x-y"}, env(), []string{"CALLGW_UDP_PORTS"}},
		{"stray argument", []string{"-addr", ":0", "extra"}, env(), []string{"unexpected arguments"}},
		{"billing time zone", nil, env("CALLGW_BILLING_TIMEZONE", "Mars/Olympus"), []string{"CALLGW_BILLING_TIMEZONE", "Mars/Olympus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args, tc.env)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			if !strings.Contains(errOut, "configuration") {
				t.Fatalf("stderr %q does not say it is the configuration", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if out != "" {
				t.Fatalf("stdout %q", out)
			}
		})
	}
}

func TestUnknownCommandExits2(t *testing.T) {
	code, _, errOut := runCLI(t, []string{"frobnicate"}, env())
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) || !strings.Contains(errOut, "usage:") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	code, out, _ := runCLI(t, []string{"help"}, env())
	if code != 0 || !strings.Contains(out, "callgw token --agent ID") {
		t.Fatalf("help: exit %d %q", code, out)
	}
}

func TestUsageCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs := redistest.Start(t)
	rc, err := billing.SampleRateCard()
	if err != nil {
		t.Fatal(err)
	}
	l, err := billing.NewLedger(rs.Client(), rc, billing.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	e, created, err := l.Record(ctx, call.Record{ID: "wacid.CLI-USAGE-1", Direction: call.BusinessInitiated,
		PhoneNumberID: "100000000000001", UserPhone: "+447700900123", Agent: "olga", CreatedAt: start,
		AnsweredAt: start.Add(5 * time.Second), EndedAt: start.Add(100 * time.Second), MetaStart: start.Add(5 * time.Second),
		MetaDuration: 95, GatewayMillis: 95_000, Outcome: call.Answered, EndReason: call.AgentHangup})
	if err != nil || !created {
		t.Fatalf("record: %v created %v", err, created)
	}
	if e.Country != "GB" || e.CostMicros <= 0 {
		t.Fatalf("entry %+v", e)
	}
	cost := billing.FormatUSD(e.CostMicros)
	getenv := env("CALLGW_REDIS_URL", rs.URL())

	t.Run("table", func(t *testing.T) {
		code, out, errOut := runCLI(t, []string{"usage", "--month", "2026-11"}, getenv)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "Usage 2026-11") {
			t.Fatalf("no title:\n%s", out)
		}
		var gb []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "GB" {
				gb = f
			}
		}
		// COUNTRY CALLS ALL-CALLS BILLED-SECONDS MINUTES COST
		want := []string{"GB", "1", "1", "96", "1", cost} // 95 s in 6 s pulses
		if strings.Join(gb, " ") != strings.Join(want, " ") {
			t.Fatalf("GB row %q, want %q in:\n%s", gb, want, out)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI(t, []string{"usage", "--month", "2026-11", "--format", "json"}, getenv)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var rep billing.UsageReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Countries) != 1 || rep.Countries[0].Country != "GB" || rep.Countries[0].CostMicros != e.CostMicros ||
			rep.Totals.CostMicros != e.CostMicros {
			t.Fatalf("report %+v", rep)
		}
	})
	t.Run("csv", func(t *testing.T) {
		code, out, _ := runCLI(t, []string{"usage", "--month", "2026-11", "--format", "csv"}, getenv)
		if code != 0 || !strings.Contains(out, "2026-11,call,GB,,1,1,96,,,") || !strings.Contains(out, cost) {
			t.Fatalf("exit %d csv:\n%s", code, out)
		}
	})
	t.Run("another month is empty", func(t *testing.T) {
		code, out, _ := runCLI(t, []string{"usage", "--month", "2026-10", "--format", "json"}, getenv)
		var rep billing.UsageReport
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Countries) != 0 || rep.Totals.CostMicros != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"bad month", []string{"usage", "--month", "2026-13"}, getenv, "--month must be YYYY-MM"},
		{"no redis", []string{"usage", "--month", "2026-11"}, env(), "CALLGW_REDIS_URL (or --redis-url) is required"},
		{"bad format", []string{"usage", "--month", "2026-11", "--format", "xml"}, getenv, `--format "xml"`},
		{"bad redis url", []string{"usage", "--month", "2026-11"}, env("CALLGW_REDIS_URL", "http://x"), "redis url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tc.args, tc.env)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d stderr %q, want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}

func TestRatecardCheck(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	card, err := os.ReadFile("../../billing/ratecards/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	// The second card's (2026-04-01) GB tier 2.
	const tier2 = `{"from_minutes": 250000, "rate_micros": 17600}`
	i := strings.LastIndex(string(card), tier2)
	if i < 0 {
		t.Fatal("fixture edit did not apply")
	}
	broken := string(card[:i]) + `{"from_minutes": 250000, "rate_micros": 0}` + string(card[i+len(tier2):])
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"sample is valid", []string{"ratecard", "check", "../../billing/ratecards/sample.json"}, 0, "ok, 2 card(s)", ""},
		{"names the failing field", []string{"ratecard", "check", bad}, 1, "", "cards[1].markets.GB.tiers[2].rate_micros: must be > 0"},
		{"missing file", []string{"ratecard", "check", "nope.json"}, 1, "", "nope.json"},
		{"no file", []string{"ratecard", "check"}, 1, "", "usage: callgw ratecard check FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args, env())
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errs) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d, %q, %q", code, out, errOut, tc.code, tc.out, tc.errs)
			}
		})
	}
}
