package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMarkRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		frame  []byte
		ok     bool
		sentNS int64
		n      uint32
	}{
		{name: "code 0 frame", frame: []byte{0x78, 1, 2, 3}, ok: true, sentNS: 123456789, n: 42},
		{name: "code 1 frame refused", frame: []byte{0x79, 1, 2}},
		{name: "empty refused", frame: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := mark(nil, tt.frame, tt.sentNS, tt.n)
			if ok != tt.ok {
				t.Fatalf("mark ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if p[0]&3 != 3 || p[0]>>2 != tt.frame[0]>>2 || !bytes.Equal(p[3:3+len(tt.frame)-1], tt.frame[1:]) {
				t.Fatalf("not a code 3 packet of the same frame: % x", p)
			}
			s, n, ok := unmark(p)
			if !ok || s != tt.sentNS || n != tt.n {
				t.Fatalf("unmark = %d %d %v", s, n, ok)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name, args, wantErr string
	}{
		{name: "defaults", args: ""},
		{name: "zero calls", args: "-calls 0", wantErr: "-calls"},
		{name: "negative ramp", args: "-ramp -1s", wantErr: "-ramp"},
		{name: "no duration", args: "-duration 0s", wantErr: "-duration"},
		{name: "stray argument", args: "gatway", wantErr: "unexpected"},
		{name: "gateway defaults", args: "gateway"},
		{name: "gateway ctl not loopback", args: "gateway -ctl 0.0.0.0:7480", wantErr: "loopback"},
		{name: "gateway ctl no port", args: "gateway -ctl 127.0.0.1", wantErr: "-ctl"},
		{name: "gateway bad udp port", args: "gateway -port 70000", wantErr: "-port"},
		{name: "gateway fast path", args: "gateway -path fast"},
		{name: "gateway bad path", args: "gateway -path quick", wantErr: "-path"},
		{name: "peers stock bridge", args: "peers -ctl 127.0.0.1:7480 -stock-ctl 127.0.0.1:7490 -baseline=false"},
		{name: "peers stock not loopback", args: "peers -ctl 127.0.0.1:7480 -stock-ctl 10.0.0.1:7490", wantErr: "-stock-ctl"},
		{name: "peers", args: "peers -ctl 127.0.0.1:7480 -calls 50 -ramp 5s"},
		{name: "peers without ctl", args: "peers -calls 5", wantErr: "-ctl is required"},
		{name: "peers ctl not loopback", args: "peers -ctl 10.0.0.1:7480", wantErr: "loopback"},
		{name: "peers has no -direct", args: "peers -ctl 127.0.0.1:1 -direct", wantErr: "direct"},
		{name: "peers light", args: "peers -ctl 127.0.0.1:7480 -peers light"},
		{name: "peers pion", args: "peers -ctl 127.0.0.1:7480 -peers pion"},
		{name: "peers unknown kind", args: "peers -ctl 127.0.0.1:7480 -peers heavy", wantErr: "-peers"},
		{name: "peers 250 µs send slots", args: "peers -ctl 127.0.0.1:7480 -send-slots 80"},
		{name: "send slots not dividing 20 ms", args: "-send-slots 7", wantErr: "-send-slots"},
		{name: "no send slots", args: "peers -ctl 127.0.0.1:7480 -send-slots 0", wantErr: "-send-slots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := strings.Fields(tt.args)
			var err error
			switch {
			case len(args) > 0 && args[0] == "gateway":
				_, err = parseGatewayFlags(args[1:])
			case len(args) > 0 && args[0] == "peers":
				_, err = parsePeersFlags(args[1:])
			default:
				_, err = parseFlags(args)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// startTestGateway runs the gateway role in this process on free ports
// until the test ends.
func startTestGateway(t *testing.T) (*gateway, *ctlClient) {
	t.Helper()
	g, err := startGateway(gatewayConfig{Ctl: "127.0.0.1:0", ForwardDelay: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.serve(ctx) }()
	gw := newCtlClient(g.addr(), 8)
	t.Cleanup(func() {
		gw.close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway serve: %v", err)
		}
	})
	return g, gw
}

// TestSmoke runs the two roles as two goroutine groups talking through the
// control API over loopback HTTP: 3 bridged calls for 2 s, every call must
// carry audio both ways through the gateway with nothing lost, and the
// gateway must report its own figures and end with no bridge left.
func TestSmoke(t *testing.T) {
	for _, peers := range []string{peersLight, peersPion} {
		t.Run(peers, func(t *testing.T) { smoke(t, peers) })
	}
}

func smoke(t *testing.T, peers string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g, gw := startTestGateway(t)
	cfg, err := parsePeersFlags([]string{"-ctl", g.addr(), "-calls", "3", "-duration", "2s", "-peers", peers})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := run(ctx, cfg, gw)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.print(&out)
	t.Log("\n" + out.String())
	if rep.Established != 3 || rep.CallsWithAudio != 3 {
		t.Fatalf("established %d, with audio both ways %d, want 3", rep.Established, rep.CallsWithAudio)
	}
	for name, d := range map[string]direction{"to_agent": rep.ToAgent, "to_whatsapp": rep.ToWA} {
		// 2 s at 50 packets/s per call, less the first tick
		if d.Sent < 3*90 {
			t.Errorf("%s: only %d packets sent", name, d.Sent)
		}
		if d.Gaps != 0 || d.NotDelivered != 0 || d.Received != d.Sent {
			t.Errorf("%s: loss: %+v", name, d)
		}
		if d.Forwarded != d.Sent {
			t.Errorf("%s: gateway forwarded %d of %d", name, d.Forwarded, d.Sent)
		}
		if d.P50 <= 0 || d.P99 < d.P50 {
			t.Errorf("%s: latency p50 %v p99 %v", name, d.P50, d.P99)
		}
		if d.WinP50 <= 0 || d.WinP99 < d.WinP50 || d.WinMax > d.Max {
			t.Errorf("%s: window latency p50 %v p99 %v max %v (whole run max %v)", name, d.WinP50, d.WinP99, d.WinMax, d.Max)
		}
	}
	if rep.CPU <= 0 || rep.PacketsInWindow == 0 {
		t.Errorf("cpu %v over %d packets", rep.CPU, rep.PacketsInWindow)
	}
	gwr := rep.Gateway
	switch {
	case gwr == nil:
		t.Fatal("no gateway figures")
	case !rep.SameProcess:
		t.Errorf("gateway pid %d reported as another process", gwr.PID)
	case gwr.CPU <= 0:
		t.Errorf("gateway cpu %v", gwr.CPU)
	case gwr.Forwarded == 0 || gwr.Forwarded > rep.PacketsInWindow+6:
		// in the window both peers of 3 calls send; the gateway forwards
		// those (plus at most one packet per stream in flight at t0)
		t.Errorf("gateway forwarded %d in the window, peers sent %d", gwr.Forwarded, rep.PacketsInWindow)
	case gwr.Steady.Bridges != 3 || gwr.Rest.Bridges != 0:
		t.Errorf("bridges at rest %d, steady %d", gwr.Rest.Bridges, gwr.Steady.Bridges)
	case gwr.GoroutinesPerCall <= 0 || gwr.Steady.RSSBytes <= 0:
		t.Errorf("goroutines/call %.1f, rss %d", gwr.GoroutinesPerCall, gwr.Steady.RSSBytes)
	}
	if runtime.GOOS == "linux" { // the fast path's batched socket: its counts and the forward delay
		s0, s1 := gwr.Steady.Socket, gwr.End.Socket
		if s1.RecvDatagrams <= s0.RecvDatagrams || s1.SendDatagrams <= s0.SendDatagrams || s1.RecvCalls <= s0.RecvCalls {
			t.Errorf("socket counts in the window: %+v -> %+v", s0, s1)
		}
		if d := gwr.End.ForwardDelay.Sub(gwr.Steady.ForwardDelay); d.Total() < gwr.Forwarded/2 || d.Quantile(0.5) <= 0 {
			t.Errorf("forward delay: %d packets timed of %d forwarded, p50 %v", d.Total(), gwr.Forwarded, d.Quantile(0.5))
		}
	}
	st, err := gw.stats(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bridges != 0 {
		t.Errorf("%d bridges left on the gateway after the run", st.Bridges)
	}
}

// TestControlAPIBadInput: bad requests get a clear status and change nothing.
func TestControlAPIBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, gw := startTestGateway(t)
	var id idMsg
	if err := gw.do(ctx, http.MethodPost, "/bridges", nil, &id); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		body               any
		wantStatus         string
	}{
		{name: "unknown bridge", method: http.MethodPost, path: bridgePath("nope", "whatsapp-offer"), body: sdpMsg{SDP: "v=0"}, wantStatus: "404"},
		{name: "unknown bridge delete", method: http.MethodDelete, path: bridgePath("nope", ""), wantStatus: "404"},
		{name: "not json", method: http.MethodPost, path: bridgePath(id.ID, "whatsapp-offer"), body: json.RawMessage(`"x"`), wantStatus: "400"},
		{name: "bad sdp", method: http.MethodPost, path: bridgePath(id.ID, "whatsapp-offer"), body: sdpMsg{SDP: "hello"}, wantStatus: "400"},
		{name: "answer before offer", method: http.MethodPost, path: bridgePath(id.ID, "agent-answer"), body: sdpMsg{SDP: "v=0\r\n"}, wantStatus: "40"},
		{name: "wrong method", method: http.MethodGet, path: "/bridges", wantStatus: "405"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := gw.do(ctx, tt.method, tt.path, tt.body, nil)
			if err == nil || !strings.Contains(err.Error(), ": "+tt.wantStatus) {
				t.Fatalf("err = %v, want status %s", err, tt.wantStatus)
			}
			st, err := gw.stats(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if st.Bridges != 1 {
				t.Fatalf("bridges = %d after a bad request, want 1", st.Bridges)
			}
		})
	}
	if err := gw.do(ctx, http.MethodDelete, bridgePath(id.ID, ""), nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestTwoProcesses builds the command and runs `gateway` and `peers` as two
// processes, as in the measurement: 3 calls for 2 s with nothing lost, the
// gateway's figures reported as another process's, and a clean gateway
// exit on SIGTERM.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	// The build gets its own budget: on a cold cache it is the slow part.
	bin := filepath.Join(t.TempDir(), "callgw-load")
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		bcancel()
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bcancel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	gwCmd := exec.CommandContext(ctx, bin, "gateway", "-ctl", "127.0.0.1:0", "-path", "fast")
	gwOut, err := gwCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var gwErr bytes.Buffer
	gwCmd.Stderr = &gwErr
	if err := gwCmd.Start(); err != nil {
		t.Fatal(err)
	}
	gwExited := make(chan error, 1)
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(gwOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		gwExited <- gwCmd.Wait()
	}()
	defer func() {
		if gwCmd.ProcessState == nil {
			_ = gwCmd.Process.Kill()
			<-gwExited
		}
	}()
	var ctl string
	select {
	case l := <-lines:
		_, rest, ok := strings.Cut(l, "control http://")
		if !ok {
			t.Fatalf("gateway said %q (stderr %s)", l, gwErr.String())
		}
		ctl, _, _ = strings.Cut(rest, " ")
	case <-ctx.Done():
		t.Fatal("gateway not ready")
	}

	out, err := exec.CommandContext(ctx, bin, "peers", "-ctl", ctl, "-calls", "3", "-duration", "2s").CombinedOutput()
	t.Log("\n" + string(out))
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`3 established, 3 with audio both ways`),
		regexp.MustCompile(`to_agent +sent (\d+) forwarded (\d+) received (\d+) gaps 0 not_delivered 0 `),
		regexp.MustCompile(`to_whatsapp +sent (\d+) forwarded (\d+) received (\d+) gaps 0 not_delivered 0 `),
		regexp.MustCompile(`gateway pid \d+ \(separate process\)`),
		regexp.MustCompile(`peers pid \d+`),
		regexp.MustCompile(`bare relay \(in the gateway process, pid \d+, GOMAXPROCS \d+\): 3 calls, sent \d+ forwarded [1-9]\d* received [1-9]\d*;`),
		regexp.MustCompile(`ratio bridge / bare relay \(CPU per forwarded packet\): [\d.]+ µs / [\d.]+ µs = [\d.]+`),
	} {
		m := want.FindStringSubmatch(string(out))
		if m == nil {
			t.Errorf("peers output lacks %q", want)
			continue
		}
		if len(m) == 4 && (m[1] != m[2] || m[1] != m[3] || m[1] == "0") {
			t.Errorf("sent/forwarded/received differ: %q", m[0])
		}
	}

	if err := gwCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	select {
	case err := <-gwExited:
		if err != nil {
			t.Fatalf("gateway exit: %v (stderr %s)", err, gwErr.String())
		}
	case <-ctx.Done():
		t.Fatal("gateway did not exit on SIGTERM")
	}
	if len(rest) == 0 || !strings.HasPrefix(rest[len(rest)-1], "gateway done:") {
		t.Errorf("gateway final line missing: %q", rest)
	}
}
