package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	goio "io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/internal/app"
	"github.com/callgw/callgw/internal/doctor"
	"github.com/callgw/callgw/internal/mediadiag"
	"github.com/callgw/callgw/internal/netlab"
	"github.com/callgw/callgw/internal/oggopus"
	"github.com/callgw/callgw/internal/testkit/agentclient"
	"github.com/callgw/callgw/internal/testkit/audiotest"
	"github.com/callgw/callgw/metasim"
)

func TestMain(m *testing.M) {
	netlab.RoleMain(map[string]netlab.RoleFunc{
		"gateway": gatewayRole,
		"meta":    metaRole,
		"agent":   agentRole,
		"doctor":  doctorRole,
		"fetch":   fetchRole,
	})
	os.Exit(m.Run())
}

func stderrLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// gatewayRole runs a whole callgw configured by CALLGW_* variables.
func gatewayRole(ctx context.Context, io *netlab.RoleIO) error {
	cfg, err := app.LoadConfig(nil, os.Getenv, os.Stderr)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	a, err := app.New(ctx, cfg, stderrLogger(slog.LevelWarn))
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	io.Emit("ready", "url", a.URL)
	for {
		select {
		case err := <-done:
			return err
		case _, ok := <-io.Commands():
			if !ok {
				return <-done // stdin closed: ctx is cancelled, Run drains
			}
		}
	}
}

// metaRole is Meta: the simulated Graph API on META_LISTEN sending signed
// webhooks to WEBHOOK_URL, and WhatsApp users (ICE-lite Pion peers, host
// candidates) in this namespace.
func metaRole(ctx context.Context, io *netlab.RoleIO) error {
	sim, err := metasim.New(metasim.Config{AppSecret: os.Getenv("CALLGW_APP_SECRET"),
		VerifyToken: os.Getenv("CALLGW_VERIFY_TOKEN"), AccessToken: os.Getenv("CALLGW_ACCESS_TOKEN"),
		PhoneNumberID: os.Getenv("CALLGW_PHONE_NUMBER_ID"), WebhookURL: os.Getenv("WEBHOOK_URL"),
		Logger: stderrLogger(slog.LevelWarn)})
	if err != nil {
		return err
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", os.Getenv("META_LISTEN"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim.GraphHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	caller, err := os.ReadFile("../../testdata/audio/caller-440.ogg")
	if err != nil {
		return err
	}
	io.Emit("ready")
	var wg sync.WaitGroup
	defer wg.Wait()
	for m := range io.Commands() {
		switch m["op"] {
		case "call":
			uc, err := sim.PlaceCall(ctx, metasim.CallOptions{From: "+447700900123", Name: "Alice", Audio: caller})
			if err != nil {
				io.Emit("placed", "err", err.Error())
				continue
			}
			io.Emit("placed", "id", uc.ID())
		case "check": // does the user hear the agent's 1000 Hz within the deadline?
			uc, ok := sim.Call(m["id"])
			if !ok {
				io.Emit("heard", "err", "unknown call")
				continue
			}
			wg.Go(func() {
				wctx, cancel := context.WithTimeout(ctx, 12*time.Second)
				defer cancel()
				if err := uc.WaitState(wctx, metasim.Accepted); err != nil {
					io.Emit("heard", "err", "never accepted: "+err.Error(), "state", uc.State().String())
					return
				}
				// Before the agent leg is up callgw sends silence toward
				// WhatsApp: listen until the tone comes or the deadline.
				var f float64
				for {
					if pkts := uc.Received(); len(pkts) >= 50 {
						var ok bool
						if ok, f = tone(pkts, 1000); ok {
							io.Emit("heard", "tone", "true", "freq", fmt.Sprintf("%.0f", f))
							return
						}
					}
					select {
					case <-wctx.Done():
						io.Emit("heard", "tone", "false", "freq", fmt.Sprintf("%.0f", f), "packets", strconv.Itoa(uc.ReceivedCount()))
						return
					case <-time.After(100 * time.Millisecond): // audio accumulating has no event
					}
				}
			})
		case "hangup":
			if uc, ok := sim.Call(m["id"]); ok {
				_ = uc.Hangup(ctx)
			}
			io.Emit("hungup")
		}
	}
	return nil
}

// tone decodes the last second of pkts and checks the dominant frequency.
func tone(pkts [][]byte, want float64) (bool, float64) {
	if len(pkts) > 50 {
		pkts = pkts[len(pkts)-50:]
	}
	pcm, err := audiotest.DecodeAll(pkts)
	if err != nil {
		return false, 0
	}
	return audiotest.HasTone(pcm, want, 20)
}

// agentRole is an agent softphone (agentclient, a real Pion peer) that
// takes the next call and reports whether media flowed and what it heard.
// AGENT_ICE is a JSON array of ICE servers; AGENT_SERVER_ICE=1 uses the
// gateway's (welcome); AGENT_RELAY_ONLY=1 forces TURN.
func agentRole(ctx context.Context, io *netlab.RoleIO) error {
	f, err := os.Open("../../testdata/audio/agent-1000.ogg")
	if err != nil {
		return err
	}
	pkts, err := oggopus.ReadPackets(f)
	f.Close()
	if err != nil {
		return err
	}
	var ice []webrtc.ICEServer
	if s := os.Getenv("AGENT_ICE"); s != "" {
		if err := json.Unmarshal([]byte(s), &ice); err != nil {
			return fmt.Errorf("AGENT_ICE: %w", err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := agentclient.Dial(dctx, os.Getenv("AGENT_WS"), os.Getenv("AGENT_TOKEN"), agentclient.Options{
		Audio: pkts, ICEServers: ice, ServerICE: os.Getenv("AGENT_SERVER_ICE") == "1",
		RelayOnly: os.Getenv("AGENT_RELAY_ONLY") == "1"})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Available(dctx, true); err != nil {
		return err
	}
	var urls []string
	for _, s := range c.ICEServers() {
		urls = append(urls, strings.Join(s.URLs, " "))
	}
	io.Emit("ready", "ice", strings.Join(urls, ", "))
	for m := range io.Commands() {
		switch m["op"] {
		case "take":
			io.Emit("result", take(ctx, c, m["id"])...)
		case "hangup":
			_ = c.Send(map[string]any{"type": "hangup", "call_id": m["id"]})
			io.Emit("hungup")
		}
	}
	return nil
}

func take(ctx context.Context, c *agentclient.Client, id string) []string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := c.WaitType(ctx, "call_offered", id); err != nil {
		return []string{"err", "not offered: " + err.Error()}
	}
	if err := c.Accept(ctx, id); err != nil {
		return []string{"err", "accept: " + err.Error()}
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second) // the gateway gives up after 8 s without ICE
	defer ccancel()
	if err := c.WaitConnected(cctx, id); err != nil {
		d := mediadiag.Diagnose(c.Stats(id), uint64(len(c.Received(id))))
		return []string{"connected", "false", "err", err.Error(), "cause", d.Cause.String(), "diagnosis", d.String()}
	}
	out := []string{"connected", "true"}
	if p := c.SelectedPair(id); p != nil {
		out = append(out, "local", p.Local.Typ.String(), "remote", p.Remote.Typ.String(),
			"remote_addr", net.JoinHostPort(p.Remote.Address, strconv.Itoa(int(p.Remote.Port))))
	}
	for len(c.Received(id)) < 60 { // the tone check reads the last 50
		select {
		case <-ctx.Done():
			return append(out, "err", fmt.Sprintf("no audio: %d packets", len(c.Received(id))))
		case <-time.After(20 * time.Millisecond): // audio accumulating has no event
		}
	}
	ok, f := tone(c.Received(id), 440)
	return append(out, "tone", strconv.FormatBool(ok), "freq", fmt.Sprintf("%.0f", f))
}

// doctorRole runs what `callgw doctor` runs, configured by CALLGW_*
// variables, and reports each check.
func doctorRole(ctx context.Context, io *netlab.RoleIO) error {
	cfg, err := app.LoadConfig(nil, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	dc, err := cfg.DoctorConfig()
	if err != nil {
		return err
	}
	rep := doctor.Run(ctx, dc)
	rep.Write(os.Stderr)
	kv := []string{"ok", strconv.FormatBool(rep.OK())}
	for _, c := range rep {
		kv = append(kv, c.Name, c.Status.String(), c.Name+".detail", c.Detail, c.Name+".fix", c.Fix)
	}
	io.Emit("report", kv...)
	return nil
}

// fetchRole GETs FETCH_URL and reports the status and body.
func fetchRole(ctx context.Context, io *netlab.RoleIO) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, os.Getenv("FETCH_URL"), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := goio.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	io.Emit("fetched", "status", strconv.Itoa(resp.StatusCode), "body", string(b))
	return nil
}
