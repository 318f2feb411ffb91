package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/redistest"
)

// TestOnRedisCluster runs a whole inbound call, a permission request and the
// ledger on a real 3-master Redis Cluster: every multi-key operation must
// stay inside one hash slot (no CROSSSLOT errors).
func TestOnRedisCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := redistest.StartCluster(t, 3)
	ta := startAppOn(t, cl.Nodes[0], "-redis-url", "", "-redis-cluster", "-redis-addrs", strings.Join(cl.Addrs(), ","))
	ag := ta.agent(t, ctx, "clara")
	uc := connectCall(t, ctx, ta, ag, "+447700900150")
	waitFor(t, ctx, "audio", func() bool { return len(ag.Received(uc.ID())) > 50 && uc.ReceivedCount() > 50 })
	checkTone(t, "agent", ag.Received(uc.ID()), 440)
	if err := uc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	e := waitEntry(t, ctx, ta, uc.ID())
	if e.Outcome != call.Answered || !e.DurationFromMeta() {
		t.Fatalf("entry %+v", e)
	}
	if err := ag.Send(map[string]any{"type": "permission_request", "to": "+447700900151"}); err != nil {
		t.Fatal(err)
	}
	permissionFor(t, ctx, ag, "+447700900151", func(p map[string]any) bool { return p["status"] == "temporary" })
	if n := testutilCount(t, ta, "callgw_redis_errors_total"); n != 0 {
		t.Fatalf("%v redis errors on the cluster", n)
	}
}
