package media

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDelayHistogramQuantiles(t *testing.T) {
	var h delayHist
	for _, d := range []time.Duration{-time.Microsecond, 0, 5 * time.Microsecond, 15 * time.Microsecond, 25 * time.Microsecond, time.Second} {
		h.observe(d)
	}
	e := &Engine{fast: &fastSock{delay: &h}}
	s := e.ForwardDelay()
	if s.Total() != 6 {
		t.Fatalf("total %d", s.Total())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 10 * time.Microsecond}, {0.6, 20 * time.Microsecond}, {0.8, 30 * time.Microsecond}, {1, 10010 * time.Microsecond}} {
		if got := s.Quantile(c.q); got != c.want {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	h.observe(15 * time.Microsecond)
	d := e.ForwardDelay().Sub(s)
	if d.Total() != 1 || d.Quantile(0.5) != 20*time.Microsecond {
		t.Fatalf("difference: %d packets, p50 %v", d.Total(), d.Quantile(0.5))
	}
	if (DelayHistogram{}).Quantile(0.5) != 0 || (&Engine{}).ForwardDelay().Counts != nil {
		t.Fatal("empty histogram")
	}
}

// TestForwardDelayMeasured: with MeasureForwardDelay on the fast path, every
// packet forwarded between two real peers is timed from its kernel arrival
// time; off, nothing is.
func TestForwardDelayMeasured(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("batched socket: Linux")
	}
	for _, on := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		e := newTestEngine(t, func(c *Config) { c.PacketPath, c.MeasureForwardDelay = PathFast, on })
		h := bridged(t, e, false)
		agent := h.agent.Load()
		h.meta.play(loadOpus(t, "caller-440.ogg"), nil, nil)
		agent.waitFor(ctx, "100 packets", func(got []rxPacket) bool { return len(got) >= 100 })
		cancel()
		d := e.ForwardDelay()
		fwd := e.SocketStats()
		t.Logf("measure %v: %d packets timed, p50 %v p99 %v; %d datagrams in %d recvmmsg", on, d.Total(), d.Quantile(0.5), d.Quantile(0.99), fwd.RecvDatagrams, fwd.RecvCalls)
		switch {
		case !on && d.Total() != 0:
			t.Fatalf("off, yet %d packets timed", d.Total())
		case on && d.Total() < 100:
			t.Fatalf("on, %d packets timed, want >= 100", d.Total())
		case on && d.Quantile(0.5) >= 10*time.Millisecond:
			// the delay of an idle bridge is microseconds; 10 ms is the
			// histogram's overflow: a clock mix-up, not a slow box
			t.Fatalf("p50 %v: arrival times are not the kernel's", d.Quantile(0.5))
		case fwd.RecvCalls == 0 || fwd.SendDatagrams == 0:
			t.Fatalf("socket stats %+v", fwd)
		}
	}
}

func TestSetDontFragment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux")
	}
	for _, network := range []string{"udp4", "udp"} {
		c, err := net.ListenUDP(network, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := SetDontFragment(c); err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		rc, _ := c.SyscallConn()
		var v int
		var gerr error
		_ = rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER) })
		if gerr != nil || v != unix.IP_PMTUDISC_PROBE {
			t.Fatalf("%s: IP_MTU_DISCOVER %d, %v", network, v, gerr)
		}
		_ = c.Close()
	}
}
