package media

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDTMF(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHarness(t, newTestEngine(t, nil))
	h.connectWhatsApp(ctx)

	t.Run("from whatsapp: telephone-event reported once per digit", func(t *testing.T) {
		for _, digit := range []struct {
			code uint8
			want rune
		}{{5, '5'}, {11, '#'}} {
			var p [4]byte
			for i := 1; i <= 6; i++ { // 3 progress packets then 3 end packets, one event timestamp
				ev := telephoneEvent{Event: digit.code, Volume: 10, Duration: uint16(min(i, 3) * 160), End: i > 3}
				ev.put(p[:])
				step := uint32(0)
				if i == 1 {
					step = 960
				}
				if _, ok := h.meta.writePacket(126, i == 1, step, p[:]); !ok {
					t.Fatal("meta could not send")
				}
			}
			select {
			case d := <-h.dtmf:
				if d != digit.want {
					t.Fatalf("OnDTMF(%q), want %q", d, digit.want)
				}
			case <-ctx.Done():
				t.Fatal("no OnDTMF")
			}
		}
		select {
		case d := <-h.dtmf:
			t.Fatalf("extra OnDTMF(%q)", d)
		default:
		}
	})

	t.Run("to whatsapp: RFC 4733 packets on our SSRC", func(t *testing.T) {
		if err := h.b.SendDTMF("1x"); !errors.Is(err, ErrBadDTMF) {
			t.Fatalf("bad digit: %v", err)
		}
		if err := h.b.SendDTMF("1#"); err != nil {
			t.Fatal(err)
		}
		type endKey struct {
			ts    uint32
			event uint8
		}
		ends := map[endKey]int{}
		h.meta.waitFor(ctx, "two DTMF digits with 3 end packets each", func(got []rxPacket) bool {
			clear(ends)
			for _, g := range got {
				if ev, ok := parseTelephoneEvent(g.payload); ok && g.pt == 126 && ev.End {
					ends[endKey{g.ts, ev.Event}]++
				}
			}
			return len(ends) == 2 && ends[endKey{}] == 0 && func() bool {
				for _, n := range ends {
					if n != 3 {
						return false
					}
				}
				return true
			}()
		})
		var events []uint8
		var markers int
		for _, g := range h.meta.received() {
			if g.pt != 126 {
				continue
			}
			ev, _ := parseTelephoneEvent(g.payload)
			if g.marker {
				markers++
				events = append(events, ev.Event)
			}
		}
		if len(events) != 2 || events[0] != 1 || events[1] != 11 || markers != 2 {
			t.Fatalf("events %v markers %d, want [1 11] 2", events, markers)
		}
	})
}

func TestBadSDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newTestEngine(t, nil)
	good := newMetaPeer(t, true).offer(ctx)
	noOpus := strings.NewReplacer("opus/48000/2", "PCMU/8000").Replace(good)
	video := strings.Replace(good, "m=audio", "m=video", 1)
	noUfrag := strings.NewReplacer("a=ice-ufrag:", "a=x-ufrag:").Replace(good)
	for _, tc := range []struct {
		name  string
		offer string
		want  error
	}{
		{"empty", "", ErrBadSDP},
		{"garbage", "hello world", ErrBadSDP},
		{"no opus", noOpus, ErrNoOpus},
		{"video only", video, ErrNoOpus},
		{"no ice credentials", noUfrag, ErrBadSDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := e.NewBridge("bad", Events{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.AnswerWhatsApp(ctx, tc.offer); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if b.waLeg() != nil {
				t.Fatal("whatsapp leg left behind")
			}
			if err := b.SetAgentAnswer(tc.offer); err == nil {
				t.Fatal("SetAgentAnswer accepted bad input without a leg")
			}
		})
	}
}

func TestOutboundOffer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := newHarness(t, newTestEngine(t, nil))
	offer, err := h.b.OfferWhatsApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a=setup:actpass", "a=rtpmap:111 opus/48000/2", "a=rtpmap:126 telephone-event/8000", "a=rtcp-mux"} {
		if !hasLine(offer, want) {
			t.Errorf("offer lacks %q", want)
		}
	}
	if !strings.Contains(offer, "a=candidate:") {
		t.Fatal("offer has no candidates (gathering not complete)")
	}
	meta := newPeer(t, peerAPI(t, true, metaOpusFmtp, true))
	answer := meta.answer(ctx, offer, false)
	if err := h.b.SetWhatsAppAnswer(answer); err != nil {
		t.Fatal(err)
	}
	waitState(ctx, t, h.waState, LegConnected)
	meta.waitFor(ctx, "silence", func(got []rxPacket) bool { return len(got) >= 5 && isSilence(got[0].payload) })

	// Before pickup (no StartWhatsAppMedia): silence only, agent audio held.
	ag := h.connectAgent(ctx)
	ag.play(loadOpus(t, "agent-1000.ogg"), nil, nil)
	waitUntil(ctx, t, meta, "agent audio dropped", func() bool { return testutil.ToFloat64(h.e.metrics.dropToWA) >= 25 })
	for i, g := range meta.received() {
		if !isSilence(g.payload) {
			t.Fatalf("packet %d toward WhatsApp before ACCEPTED is not silence", i)
		}
	}
	if err := h.b.StartWhatsAppMedia(); err != nil {
		t.Fatal(err)
	}
	meta.waitFor(ctx, "agent audio after ACCEPTED", func(got []rxPacket) bool { return countPT(got, 111, true) >= 10 })
	if role := h.b.waLeg().pc.SCTP().Transport().ICETransport().Role(); role.String() != "controlling" {
		t.Fatalf("ice role %v", role)
	}
	if err := h.b.SetWhatsAppAnswer(answer); !errors.Is(err, ErrNoLeg) {
		t.Fatalf("second answer: %v", err)
	}
}

func TestSingleUDPPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	e := newTestEngine(t, func(c *Config) { c.UDPPort = port })
	h1, h2 := newHarness(t, e), newHarness(t, e)
	a1 := h1.connectWhatsApp(ctx)
	a2 := h2.connectWhatsApp(ctx)
	for _, a := range []string{a1, a2} {
		if !strings.Contains(a, " 127.0.0.1 "+itoa(port)+" typ host") {
			t.Fatalf("answer does not use the shared port %d:\n%s", port, a)
		}
	}
	h1.meta.waitFor(ctx, "silence 1", func(got []rxPacket) bool { return len(got) >= 5 })
	h2.meta.waitFor(ctx, "silence 2", func(got []rxPacket) bool { return len(got) >= 5 })
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"full", Config{PublicIPs: []string{"203.0.113.7"}, PortMin: 10000, PortMax: 20000, MediaTimeout: time.Second}, true},
		{"bad ip", Config{PublicIPs: []string{"nope"}}, false},
		{"half range", Config{PortMin: 10}, false},
		{"inverted range", Config{PortMin: 20, PortMax: 10}, false},
		{"port and range", Config{UDPPort: 3478, PortMin: 1, PortMax: 2}, false},
		{"port too big", Config{UDPPort: 70000}, false},
		{"negative timeout", Config{MediaTimeout: -1}, false},
		{"negative start timeout", Config{MediaStartTimeout: -1}, false},
		{"tiny mtu", Config{ReceiveMTU: 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, ok want %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestLegStateString(t *testing.T) {
	for s, want := range map[LegState]string{LegUnknown: "unknown", LegNew: "new", LegConnecting: "connecting",
		LegConnected: "connected", LegDisconnected: "disconnected", LegFailed: "failed", LegClosed: "closed", 99: "unknown"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}
