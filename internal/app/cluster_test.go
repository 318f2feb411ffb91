package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/metasim"
	"github.com/callgw/callgw/signaling/agents"
)

// instance is one callgw process.
type instance struct {
	id   string
	url  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited; err says how
	err  error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "callgw")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/callgw/callgw/cmd/callgw").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestSeveralInstances runs three callgw processes on one real Redis behind
// a round-robin load balancer, with agents on different instances; then
// kills one (-9) and stops another (SIGTERM) in the middle of calls.
func TestSeveralInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := buildBinary(t) // before the clock starts: slow on a cold build cache
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs := redistest.Start(t)
	const (
		secret      = "cluster-app-secret"
		accessToken = "cluster-access-token"
		tokenSecret = "cluster-token-secret-0123456789"
		pnid        = "100000000000001"
	)

	// The load balancer in front of the instances (webhooks spread over them).
	var backends atomic.Pointer[[]*url.URL]
	var rr atomic.Uint64
	lb := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			bs := *backends.Load()
			r.SetURL(bs[int(rr.Add(1))%len(bs)])
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) },
	})
	defer lb.Close()

	// Meta: the simulator's Graph API, webhooks to the load balancer.
	sim, err := metasim.New(metasim.Config{AppSecret: secret, AccessToken: accessToken, PhoneNumberID: pnid,
		WebhookURL: lb.URL + "/webhooks/whatsapp", LoopbackOnly: true, WebhookRetries: 6,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	graph := httptest.NewServer(sim.GraphHandler())
	defer graph.Close()

	start := func(id string) *instance {
		addr := freeAddr(t)
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"CALLGW_ADDR="+addr, "CALLGW_REDIS_URL="+rs.URL(), "CALLGW_GRAPH_URL="+graph.URL,
			"CALLGW_ACCESS_TOKEN="+accessToken, "CALLGW_APP_SECRET="+secret, "CALLGW_VERIFY_TOKEN=v",
			"CALLGW_PHONE_NUMBER_ID="+pnid, "CALLGW_TOKEN_SECRET="+tokenSecret, "CALLGW_MEDIA_LOOPBACK=true",
			"CALLGW_INSTANCE_ID="+id, "CALLGW_LEASE_TTL=2s", "CALLGW_DRAIN_TIMEOUT=3s", "CALLGW_AGENT_GRACE=30s",
			"CALLGW_LOG_FORMAT=text", "CALLGW_LOG_LEVEL=warn", "CALLGW_MASK_NUMBERS=false")
		cmd.Stdout = io.Discard
		cmd.Stderr = testWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		in := &instance{id: id, url: "http://" + addr, cmd: cmd, done: make(chan struct{})}
		go func() { in.err = cmd.Wait(); close(in.done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-in.done })
		for {
			if resp, err := http.Get(in.url + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return in
				}
			}
			select {
			case <-in.done:
				t.Fatalf("%s exited: %v", id, in.err)
			case <-ctx.Done():
				t.Fatalf("%s not ready", id)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	ins := []*instance{start("i1"), start("i2"), start("i3")}
	var us []*url.URL
	for _, in := range ins {
		u, _ := url.Parse(in.url)
		us = append(us, u)
	}
	backends.Store(&us)

	// One agent per instance.
	ags := make([]*agentclient.Client, 3)
	for i, in := range ins {
		tok, err := agents.IssueToken([]byte(tokenSecret), fmt.Sprintf("agent%d", i+1), agents.RoleAgent, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ags[i], err = agentclient.Dial(ctx, "ws"+strings.TrimPrefix(in.url, "http")+"/ws/agent", tok,
			agentclient.Options{Audio: packets(t, "agent-1000.ogg"), LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ags[i].Close()
		if err := ags[i].Available(ctx, true); err != nil {
			t.Fatal(err)
		}
	}

	// Three calls; each rings every agent wherever it is; agent i takes call i.
	rdb := rs.Client()
	owner := func(id string) string { return rdb.Get(ctx, "callgw:call:{"+id+"}:owner").Val() }
	calls := make([]*metasim.UserCall, 3)
	for i := range calls {
		uc, err := sim.PlaceCall(ctx, metasim.CallOptions{From: fmt.Sprintf("+4477009003%02d", i), Name: "C", Audio: oggBytes(t, "caller-440.ogg")})
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = uc
		for _, a := range ags {
			if _, err := a.WaitType(ctx, "call_offered", uc.ID()); err != nil {
				t.Fatalf("call %d not offered everywhere: %v", i, err)
			}
		}
		if err := ags[i].Accept(ctx, uc.ID()); err != nil {
			t.Fatal(err)
		}
		for j, a := range ags {
			if j != i {
				if _, err := a.WaitType(ctx, "call_taken", uc.ID()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	owners := map[string]int{}
	for i, uc := range calls {
		if err := ags[i].WaitConnected(ctx, uc.ID()); err != nil {
			t.Fatal(err)
		}
		owners[owner(uc.ID())]++
	}
	if len(owners) < 2 {
		t.Fatalf("calls not spread over instances: %v", owners)
	}
	for i, uc := range calls {
		waitFor(t, ctx, "audio both ways", func() bool { return len(ags[i].Received(uc.ID())) > 60 && uc.ReceivedCount() > 60 })
		checkTone(t, "agent", ags[i].Received(uc.ID()), 440)
		checkTone(t, "caller", uc.Received(), 1000)
	}

	// kill -9 the owner of call 0. Before that, its agent places a
	// business-initiated call (owned by the same instance): Meta's live
	// call_permissions grants it although our model has no grant.
	victim := owner(calls[0].ID())
	var dead *instance
	vi := 0
	for i, in := range ins {
		if in.id == victim {
			dead, vi = in, i
		}
	}
	const callee = "+447700900399"
	sim.SetUser(callee, metasim.UserBehavior{Audio: oggBytes(t, "caller-440.ogg"), AnswerAfter: 500 * time.Millisecond})
	if err := sim.GrantPermission("", callee, false); err != nil {
		t.Fatal(err)
	}
	if err := ags[vi].Send(map[string]any{"type": "dial", "to": callee, "ref": "out"}); err != nil {
		t.Fatal(err)
	}
	om, err := ags[vi].Wait(ctx, func(m agentclient.Msg) bool { return m.Ref == "out" })
	if err != nil || m0(om) == "" {
		t.Fatalf("dial: %v %+v", err, om)
	}
	outID := om.Call.ID
	if err := ags[vi].AnswerOffer(ctx, outID); err != nil {
		t.Fatal(err)
	}
	out, ok := sim.OutboundCall(outID)
	if !ok {
		t.Fatal("no outbound call at the simulator")
	}
	waitFor(t, ctx, "outbound audio", func() bool { return out.ReceivedCount() > 100 && len(ags[vi].Received(outID)) > 100 })
	if owner(outID) != victim {
		t.Fatalf("outbound call owned by %q, want %q", owner(outID), victim)
	}
	_ = dead.cmd.Process.Signal(syscall.SIGKILL)
	<-dead.done
	survivors := []*url.URL{}
	for _, in := range ins {
		if in != dead {
			u, _ := url.Parse(in.url)
			survivors = append(survivors, u)
		}
	}
	backends.Store(&survivors)
	if _, err := sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == calls[0].ID() }); err != nil {
		t.Fatalf("dead owner's call not terminated: %v", err)
	}
	if err := calls[0].WaitState(ctx, metasim.Ended); err != nil {
		t.Fatal(err)
	}
	if err := out.WaitState(ctx, metasim.Ended); err != nil {
		t.Fatal(err)
	}
	// The other calls go on (unless they lived on the dead instance too).
	for i := 1; i < 3; i++ {
		if owner(calls[i].ID()) == "" {
			continue
		}
		n := calls[i].ReceivedCount()
		waitFor(t, ctx, "audio after the kill", func() bool { return calls[i].ReceivedCount() > n+50 })
	}

	// SIGTERM the owner of a surviving call: readiness goes false, the call
	// continues up to the drain timeout, then it is terminated; exit 0.
	var drained *instance
	var drainedCall *metasim.UserCall
	for i := 1; i < 3; i++ {
		o := owner(calls[i].ID())
		for _, in := range ins {
			if in.id == o && in != dead && drained == nil {
				drained, drainedCall = in, calls[i]
			}
		}
	}
	if drained != nil {
		_ = drained.cmd.Process.Signal(syscall.SIGTERM)
		waitFor(t, ctx, "not ready", func() bool {
			resp, err := http.Get(drained.url + "/readyz")
			if err != nil {
				return true
			}
			resp.Body.Close()
			return resp.StatusCode == 503
		})
		if drainedCall.State() == metasim.Ended {
			t.Fatal("draining ended a live call at once")
		}
		select {
		case <-drained.done:
			if drained.err != nil {
				t.Fatalf("drained instance exited with %v", drained.err)
			}
		case <-ctx.Done():
			t.Fatal("drained instance did not exit")
		}
		if _, err := sim.WaitRequest(ctx, func(r metasim.GraphRequest) bool { return r.Action == "terminate" && r.CallID == drainedCall.ID() }); err != nil {
			t.Fatal(err)
		}
	}

	// Every call ends and is recorded exactly once, with Meta's duration.
	for _, uc := range calls {
		if uc.State() != metasim.Ended {
			if err := uc.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	l, err := billing.NewLedger(rdb, mustSampleCard(t), billing.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, uc := range calls {
		var e billing.Entry
		waitFor(t, ctx, "ledger entry", func() bool {
			var err error
			e, err = l.Get(ctx, call.ID(uc.ID()))
			return err == nil && e.MetaDuration >= 0
		})
		if i == 0 && e.EndReason != call.OwnerLost {
			t.Errorf("killed owner's call: %+v", e)
		}
		if drainedCall != nil && uc == drainedCall && e.EndReason != call.Drained {
			t.Errorf("drained call: %+v", e)
		}
	}
	// The dead owner's outbound call bills Meta's seconds (terminate's
	// start and end), not the gateway's.
	var oe billing.Entry
	waitFor(t, ctx, "outbound ledger entry with Meta's figures", func() bool {
		var err error
		oe, err = l.Get(ctx, call.ID(outID))
		return err == nil && oe.DurationFromMeta()
	})
	if oe.Direction != call.BusinessInitiated || oe.Outcome != call.Answered || oe.EndReason != call.OwnerLost ||
		oe.BilledSeconds == 0 || oe.BilledSeconds%6 != 0 || oe.CostMicros == 0 {
		t.Errorf("killed owner's outbound call: %+v", oe)
	}
	es, _, err := l.Calls(ctx, billing.CallFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[call.ID]int{}
	for _, e := range es {
		seen[e.ID]++
	}
	for _, uc := range calls {
		if seen[call.ID(uc.ID())] != 1 {
			t.Fatalf("call %s recorded %d times", uc.ID(), seen[call.ID(uc.ID())])
		}
	}
	if seen[call.ID(outID)] != 1 {
		t.Fatalf("outbound call recorded %d times", seen[call.ID(outID)])
	}
}

func mustSampleCard(t *testing.T) *billing.RateCard {
	t.Helper()
	rc, err := billing.SampleRateCard()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func m0(m agentclient.Msg) string {
	if m.Type != "call" || m.Call == nil {
		return ""
	}
	return m.Call.ID
}
