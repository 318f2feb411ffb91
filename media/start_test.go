package media

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitUntil polls cond on every notification of p until it holds.
func waitUntil(ctx context.Context, t *testing.T, p *peer, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-p.notify:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A user-initiated call: ICE and DTLS complete, the agent talks, but until
// StartWhatsAppMedia the WhatsApp peer receives no RTP and no RTCP at all.
func TestNothingTowardWhatsAppBeforeStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newTestEngine(t, nil)
	h := newHarness(t, e)
	h.hold = true
	h.connectWhatsApp(ctx)
	if err := h.b.SendDTMF("1"); !errors.Is(err, ErrMediaNotStarted) {
		t.Fatalf("SendDTMF before start: %v, want ErrMediaNotStarted", err)
	}
	agentAudio := loadOpus(t, "agent-1000.ogg")
	caller := loadOpus(t, "caller-440.ogg")
	ag := h.connectAgent(ctx)
	var mu sync.Mutex
	var sent []int
	ag.play(agentAudio, &sent, &mu)
	h.meta.play(caller, nil, nil)
	// Evidence that time passed with everything else working: the caller is
	// heard by the agent, agent audio was dropped toward WhatsApp, and the
	// pacer ran RTCP rounds (the agent leg has an RTT from our SR).
	waitUntil(ctx, t, ag, "agent-side flow and RTCP", func() bool {
		return countPT(ag.received(), 111, false) >= 60 && h.b.Stats().Agent.RTT > 0 &&
			testutil.ToFloat64(e.metrics.dropToWA) >= 25
	})
	if n, r := h.meta.count.Load(), h.meta.rtcpIn.Load(); n != 0 || r != 0 {
		t.Fatalf("whatsapp peer received %d RTP and %d RTCP packets before StartWhatsAppMedia", n, r)
	}
	if s := h.b.Stats().WhatsApp; s.PacketsSent != 0 {
		t.Fatalf("stats: %d packets sent toward WhatsApp before start", s.PacketsSent)
	}

	if err := h.b.StartWhatsAppMedia(); err != nil {
		t.Fatal(err)
	}
	h.meta.waitFor(ctx, "agent audio at whatsapp", func(got []rxPacket) bool { return countPT(got, 111, true) >= 25 })
	waitUntil(ctx, t, h.meta, "RTCP at whatsapp", func() bool { return h.meta.rtcpIn.Load() > 0 })
	if err := h.b.SendDTMF("1"); err != nil {
		t.Fatalf("SendDTMF after start: %v", err)
	}
	if err := h.b.StartWhatsAppMedia(); err != nil {
		t.Fatalf("second StartWhatsAppMedia: %v", err)
	}
	_ = h.b.Close()
	if err := h.b.StartWhatsAppMedia(); !errors.Is(err, ErrClosed) {
		t.Fatalf("StartWhatsAppMedia after close: %v", err)
	}
}

// SilenceBeforeAccept: a user-initiated call's leg carries silence only.
func TestSilenceBeforeAccept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newTestEngine(t, func(c *Config) { c.SilenceBeforeAccept = true })
	h := newHarness(t, e)
	h.hold = true
	h.connectWhatsApp(ctx)
	ag := h.connectAgent(ctx)
	ag.play(loadOpus(t, "agent-1000.ogg"), nil, nil)
	h.meta.waitFor(ctx, "25 frames", func(got []rxPacket) bool { return len(got) >= 25 })
	waitUntil(ctx, t, h.meta, "agent audio dropped", func() bool { return testutil.ToFloat64(e.metrics.dropToWA) >= 25 })
	for i, g := range h.meta.received() {
		if !isSilence(g.payload) {
			t.Fatalf("packet %d toward WhatsApp before start is not silence (pt %d, %d bytes)", i, g.pt, len(g.payload))
		}
	}
	if err := h.b.StartWhatsAppMedia(); err != nil {
		t.Fatal(err)
	}
	h.meta.waitFor(ctx, "agent audio at whatsapp", func(got []rxPacket) bool { return countPT(got, 111, true) >= 10 })
}

func TestMediaWatchdog(t *testing.T) {
	const short, long = 300 * time.Millisecond, time.Hour
	for _, tc := range []struct {
		name       string
		start, mid time.Duration
		metaSends  bool // the WhatsApp peer sends a few packets, then stops
	}{
		{"no media at all: start threshold", short, long, false},
		{"media then none: mid-call threshold", long, short, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			e := newTestEngine(t, func(c *Config) { c.MediaStartTimeout, c.MediaTimeout = tc.start, tc.mid })
			h := newHarness(t, e)
			h.connectWhatsApp(ctx)
			if tc.metaSends {
				for range 5 {
					if _, ok := h.meta.writePacket(111, false, 960, []byte{0xf8, 0xff, 0xfe}); !ok {
						t.Fatal("meta could not send")
					}
				}
				waitUntil(ctx, t, h.meta, "packets counted", func() bool { return h.b.Stats().WhatsApp.PacketsReceived >= 5 })
			}
			// Unarmed: 60 pacer ticks (1.2 s, 4x the short threshold) pass
			// without a timeout.
			h.meta.waitFor(ctx, "60 frames", func(got []rxPacket) bool { return len(got) >= 60 })
			select {
			case <-h.timeout:
				t.Fatal("OnMediaTimeout fired before ArmWatchdog")
			default:
			}
			armed := time.Now()
			if err := h.b.ArmWatchdog(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-h.timeout:
			case <-ctx.Done():
				t.Fatal("no OnMediaTimeout after arming")
			}
			if d := time.Since(armed); d < short {
				t.Fatalf("fired %v after arming, before the %v threshold", d, short)
			}
			n := len(h.meta.received())
			h.meta.waitFor(ctx, "40 more frames", func(got []rxPacket) bool { return len(got) >= n+40 })
			select {
			case <-h.timeout:
				t.Fatal("OnMediaTimeout fired twice")
			default:
			}
			if v := testutil.ToFloat64(e.metrics.MediaTimeouts); v != 1 {
				t.Fatalf("timeouts metric %v", v)
			}
		})
	}
}

// On the fast path, Pion still sees DTLS and ICE: the WhatsApp peer
// closing (DTLS close_notify, then no more STUN answers) ends the leg,
// and the leg leaves the fast path's routing table.
func TestFastPathRemoteClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newTestEngine(t, func(c *Config) { c.PacketPath = PathFast })
	h := newHarness(t, e)
	h.connectWhatsApp(ctx)
	wa := h.b.waLeg()
	fl := wa.fast.Load()
	if fl == nil {
		t.Fatal("whatsapp leg not on the fast path")
	}
	if (*e.fast.routes.Load())[fl.remote] != fl {
		t.Fatal("fast leg not routed")
	}
	h.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
	waitUntil(ctx, t, h.meta, "media counted on the fast path", func() bool { return h.b.Stats().WhatsApp.PacketsReceived >= 10 })
	h.meta.close()
	for done := false; !done; {
		select {
		case s := <-h.waState:
			done = s == LegClosed || s == LegFailed
		case <-ctx.Done():
			t.Fatal("whatsapp leg did not end after the peer closed")
		}
	}
	if _, ok := (*e.fast.routes.Load())[fl.remote]; ok {
		t.Fatal("closed leg still routed")
	}
}
