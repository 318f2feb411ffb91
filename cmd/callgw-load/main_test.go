package main

import (
	"bytes"
	"context"
	"strings"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(strings.Fields(tt.args))
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestSmoke runs 3 bridged calls for 2 s: every call must carry audio both
// ways through the engine with nothing lost.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := parseFlags([]string{"-calls", "3", "-duration", "2s"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(ctx, cfg)
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
			t.Errorf("%s: engine forwarded %d of %d", name, d.Forwarded, d.Sent)
		}
		if d.P50 <= 0 || d.P99 < d.P50 {
			t.Errorf("%s: latency p50 %v p99 %v", name, d.P50, d.P99)
		}
	}
	if rep.CPU <= 0 || rep.PacketsInWindow == 0 {
		t.Errorf("cpu %v over %d packets", rep.CPU, rep.PacketsInWindow)
	}
}
