//go:build soak

package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/metasim"
)

// TestSoak runs many concurrent calls through the whole gateway (simulated
// WhatsApp users, the media bridge, agents with real Pion peers, a real
// redis-server) while Redis is restarted twice and the Graph API is down
// for a while, then checks that every call was recorded exactly once,
// that goroutines and heap came back to their starting level and that no
// error was logged without a cause. Not part of the default run:
//
//	CALLGW_SOAK_CALLS=200 go test -tags soak -run TestSoak -v -timeout 20m ./internal/app/
//
// Environment: CALLGW_SOAK_CALLS (default 200), CALLGW_SOAK_RAMP (default
// 40s: calls are placed evenly over it), CALLGW_SOAK_HOLD (default 20s: how
// long each phase of the connected calls lasts), CALLGW_SOAK_SETUP_PARALLEL
// (default 8: calls being set up at once), CALLGW_SOAK_LOG (a file for
// the gateway's JSON log), CALLGW_SOAK_REPORT (a file for the summary).
func TestSoak(t *testing.T) {
	n := envInt(t, "CALLGW_SOAK_CALLS", 200)
	if n > 1000 {
		t.Fatalf("CALLGW_SOAK_CALLS=%d: at most 1000 (one number of +44 7700 900xxx each)", n)
	}
	ramp := envDur(t, "CALLGW_SOAK_RAMP", 40*time.Second)
	hold := envDur(t, "CALLGW_SOAK_HOLD", 20*time.Second)
	parallel := envInt(t, "CALLGW_SOAK_SETUP_PARALLEL", 8)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()

	var logBuf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	SetRedisLogger(log)
	t.Cleanup(func() { SetRedisLogger(slog.New(slog.DiscardHandler)) })
	env := newFaultEnv(t, log, false, "-ring-timeout", "30s", "-agent-grace", "20s", "-media-timeout", "60s", "-drain-timeout", "5s")
	audio := oggBytes(t, "caller-440.ogg")
	agentAudio := packets(t, "agent-1000.ogg")

	gBefore, hBefore := settle()
	t.Logf("before: %d goroutines, heap %.1f MiB", gBefore, mib(hBefore))

	// One agent per call: agent i takes the call of user i.
	agents := make([]*agentclient.Client, n)
	numbers := make([]string, n)
	for i := range n {
		numbers[i] = fmt.Sprintf("+447700900%03d", i) // Ofcom's drama range: valid, never assigned
		agents[i] = soakAgent(t, ctx, env.testApp, fmt.Sprintf("soak-%03d", i), agentAudio)
	}
	defer func() { // on failure; after the checks the slice is empty
		for _, ag := range agents {
			if ag != nil {
				ag.Close()
			}
		}
	}()

	type soakCall struct {
		uc *metasim.UserCall
		id string
		up bool
	}
	calls := make([]soakCall, n)
	var (
		up     sync.WaitGroup
		failed atomic.Int64
		setups = make(chan struct{}, parallel) // calls being set up at once
	)
	up.Add(n)
	for i := range n {
		go func() {
			defer up.Done()
			time.Sleep(time.Duration(i) * ramp / time.Duration(n)) // spread over the ramp (load shape, not a wait)
			setups <- struct{}{}
			defer func() { <-setups }()
			sctx, scancel := context.WithTimeout(ctx, 90*time.Second)
			defer scancel()
			fail := func(step string, err error) {
				failed.Add(1)
				st := "not placed"
				if calls[i].uc != nil {
					st = calls[i].uc.State().String()
				}
				t.Errorf("call %d (%s): %s: %v (user side %s)", i, calls[i].id, step, err, st)
			}
			uc, err := env.sim.PlaceCall(sctx, metasim.CallOptions{From: numbers[i], Name: "Soak", Audio: audio})
			if err != nil {
				fail("place", err)
				return
			}
			calls[i] = soakCall{uc: uc, id: uc.ID()}
			ag := agents[i]
			if _, err := ag.WaitType(sctx, "call_offered", uc.ID()); err != nil {
				fail("offer", err)
				return
			}
			if err := ag.Accept(sctx, uc.ID()); err != nil {
				fail("accept", err)
				return
			}
			if err := ag.WaitConnected(sctx, uc.ID()); err != nil {
				fail("agent leg", err)
				return
			}
			if err := uc.WaitState(sctx, metasim.Accepted); err != nil {
				fail("user side", err)
				return
			}
			calls[i].up = true
		}()
	}
	up.Wait()
	tUp := time.Since(start)
	connected := n - int(failed.Load())
	_, hPeak := heapNow()
	gPeak := runtime.NumGoroutine()
	t.Logf("%d/%d calls connected after %v; %d goroutines, heap %.1f MiB", connected, n, tUp.Round(time.Second), gPeak, mib(hPeak))
	// Calls that did not connect are hung up by their users now.
	for i := range n {
		if !calls[i].up && calls[i].uc != nil && calls[i].uc.State() != metasim.Ended {
			_ = calls[i].uc.Hangup(ctx)
		}
	}

	// Every call carries audio both ways.
	waitFor(t, ctx, "audio on every call", func() bool {
		for i := range n {
			if calls[i].up && (len(agents[i].Received(calls[i].id)) < 25 || calls[i].uc.ReceivedCount() < 25) {
				return false
			}
		}
		return true
	})

	endBy := func(from, to int, byAgent bool) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			if !calls[i].up {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if byAgent {
					if err := agents[i].Send(map[string]any{"type": "hangup", "call_id": calls[i].id}); err != nil {
						t.Errorf("call %d: hangup: %v", i, err)
					}
				} else if err := calls[i].uc.Hangup(ctx); err != nil {
					t.Errorf("call %d: user hangup: %v", i, err)
				}
				if _, err := agents[i].WaitType(ctx, "call_ended", calls[i].id); err != nil {
					t.Errorf("call %d: call_ended: %v", i, err)
				}
			}()
		}
		wg.Wait()
	}
	third := n / 3

	// Redis restart 1, with every call connected.
	time.Sleep(hold / 2) // calls carry audio for a while (load shape)
	env.rs.Restart()
	waitReady(t, ctx, env.URL)
	t.Logf("redis restarted (1) at %v", time.Since(start).Round(time.Second))

	// Graph API outage: the first third is hung up by agents meanwhile
	// (terminate cannot reach Meta; the calls end and are recorded).
	time.Sleep(hold / 2)
	env.graph.set(graph5xx, true, 0)
	t.Logf("graph down at %v", time.Since(start).Round(time.Second))
	endBy(0, third, true)
	time.Sleep(hold / 4) // the outage lasts (load shape)
	env.graph.set(graphOK, false, 0)
	t.Logf("graph back at %v (%d requests failed)", time.Since(start).Round(time.Second), env.graph.failed.Load())

	// Redis restart 2 while the second third is hung up by the users.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); endBy(third, 2*third, false) }()
	env.rs.Restart()
	wg.Wait()
	waitReady(t, ctx, env.URL)
	t.Logf("redis restarted (2) at %v", time.Since(start).Round(time.Second))

	// The rest: agents hang up.
	time.Sleep(hold / 2)
	endBy(2*third, n, true)
	// Users whose hangup Meta never got (the Graph outage) hang up too: a
	// webhook about a call the gateway ended is acknowledged.
	for i := range third {
		if calls[i].up && calls[i].uc.State() != metasim.Ended {
			_ = calls[i].uc.Hangup(ctx)
		}
	}

	// Every call recorded exactly once.
	months := map[string]bool{}
	placed := 0
	for i := range n {
		if calls[i].uc == nil {
			continue
		}
		placed++
		e := waitEntry(t, ctx, env.testApp, calls[i].id)
		if e.ID != call.ID(calls[i].id) {
			t.Fatalf("entry %+v for %s", e, calls[i].id)
		}
		months[e.EndedAt.UTC().Format("2006-01")] = true
	}
	var all int64
	for m := range months {
		rep, err := env.Ledger.Usage(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		all += rep.Totals.AllCalls
	}
	if all != int64(placed) {
		t.Errorf("the ledger counts %d calls, %d were placed", all, placed)
	}
	log.Info("soak: all calls recorded", "calls", n)

	// Back to the starting level: agents gone, peers closed.
	for _, ag := range agents {
		ag.Close()
	}
	waitFor(t, ctx, "every agent session gone", func() bool { return len(env.Hub.Sessions(nil)) == 0 })
	waitFor(t, ctx, "every live call gone", func() bool { return len(env.Ctrl.Live()) == 0 })
	http.DefaultClient.CloseIdleConnections()
	// The harness lets go of what it kept (received audio of every user and
	// agent, the simulator's history): what is left is the gateway's.
	clear(agents)
	clear(calls)
	env.closeSim()
	var gAfter int
	var hAfter uint64
	const gTolerance = 10
	settleCtx, settleCancel := context.WithTimeout(ctx, 60*time.Second)
	defer settleCancel()
	for {
		gAfter, hAfter = settle()
		if gAfter <= gBefore+gTolerance {
			break
		}
		select {
		case <-settleCtx.Done():
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d -> %d (tolerance %d)\n%s", gBefore, gAfter, gTolerance, buf[:runtime.Stack(buf, true)])
		case <-time.After(500 * time.Millisecond):
		}
	}
	heapTolerance := max(hBefore/2, 32<<20)
	if hAfter > hBefore+heapTolerance {
		t.Errorf("heap %.1f MiB -> %.1f MiB (tolerance %.1f MiB)", mib(hBefore), mib(hAfter), mib(heapTolerance))
	}
	if p := os.Getenv("CALLGW_SOAK_HEAPPROFILE"); p != "" { // what is left, for pprof
		if f, err := os.Create(p); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}

	// The log: JSON only, every error with its cause.
	lines, errorsLogged := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		lines++
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		if m["level"] == "ERROR" {
			errorsLogged++
			if s, _ := m["err"].(string); s == "" {
				t.Errorf("error logged without a cause: %s", line)
			}
		}
	}
	if os.Getenv("CALLGW_SOAK_STACKS") != "" {
		buf := make([]byte, 4<<20)
		t.Logf("goroutines after:\n%s", buf[:runtime.Stack(buf, true)])
	}
	if p := os.Getenv("CALLGW_SOAK_LOG"); p != "" {
		_ = os.WriteFile(p, []byte(logBuf.String()), 0o644)
	}
	summary := fmt.Sprintf("soak: %d calls (%d placed, %d connected), ledger all_calls %d; goroutines %d before, %d peak, %d after; heap %.1f MiB before, %.1f MiB peak, %.1f MiB after; %d log lines, %d errors; Graph failures %d; %v",
		n, placed, connected, all, gBefore, gPeak, gAfter, mib(hBefore), mib(hPeak), mib(hAfter), lines, errorsLogged, env.graph.failed.Load(), time.Since(start).Round(time.Second))
	t.Log(summary)
	if p := os.Getenv("CALLGW_SOAK_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(summary+"\n"), 0o644)
	}
}

// settle collects garbage and counts goroutines, not counting idle HTTP
// keep-alive connections (pooled, bounded by MaxIdleConnsPerHost, closed
// after IdleConnTimeout: not owned by a call).
func settle() (goroutines int, heap uint64) {
	runtime.GC()
	runtime.GC()
	_, heap = heapNow()
	buf := make([]byte, 8<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "net/http.(*conn).serve") {
			continue
		}
		goroutines++
	}
	return goroutines, heap
}

func heapNow() (int, uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 2000 {
		t.Fatalf("%s=%q: want 1..2000", name, v)
	}
	return n
}

func envDur(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > 10*time.Minute {
		t.Fatalf("%s=%q: want a duration up to 10m", name, v)
	}
	return d
}

// soakAgent is testApp.agent without a cleanup (which would keep the
// client, and all the audio it received, until the test ends).
func soakAgent(t *testing.T, ctx context.Context, ta *testApp, id string, audio [][]byte) *agentclient.Client {
	t.Helper()
	tok, err := ta.AgentToken(id, "agent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Dial(ctx, "ws"+strings.TrimPrefix(ta.URL, "http")+"/ws/agent", tok,
		agentclient.Options{Audio: audio, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Available(ctx, true); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}
