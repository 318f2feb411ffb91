package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callgw/callgw/media"
)

// The bare relay baseline: the cheapest relay of the same packet rate
// (one UDP socket, a map from source to destination, one read and one write
// per packet, no crypto), as /work/shared/bench/udprelay, run inside the
// gateway process so that its CPU is measured on the same core, in the same
// run, with the same tool as the bridge.

// relayPacketLen is an RTP header plus an 80-byte Opus frame.
const relayPacketLen = 92

// relay forwards between paired sources. A datagram "PAIR"+4-byte id
// registers its sender; two senders with one id are paired.
type relay struct {
	conn      *net.UDPConn
	forwarded atomic.Uint64
	done      chan struct{}
}

func startRelay() (*relay, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	_ = media.SetDontFragment(conn) // as the gateway's socket: the same kernel work per datagram
	r := &relay{conn: conn, done: make(chan struct{})}
	go r.serve()
	return r, nil
}

func (r *relay) port() int { return r.conn.LocalAddr().(*net.UDPAddr).Port }

// close stops the relay and waits for its goroutine.
func (r *relay) close() {
	_ = r.conn.Close()
	<-r.done
}

func (r *relay) serve() {
	defer close(r.done)
	waiting := map[uint32]netip.AddrPort{}
	peer := map[netip.AddrPort]netip.AddrPort{}
	buf := make([]byte, 2048)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n == 8 && string(buf[:4]) == "PAIR" {
			id := uint32(buf[4])<<24 | uint32(buf[5])<<16 | uint32(buf[6])<<8 | uint32(buf[7])
			if other, ok := waiting[id]; ok && other != from {
				peer[from], peer[other] = other, from
				delete(waiting, id)
				// acknowledge both ends
				_, _ = r.conn.WriteToUDPAddrPort([]byte("OK"), from)
				_, _ = r.conn.WriteToUDPAddrPort([]byte("OK"), other)
			} else {
				waiting[id] = from
			}
			continue
		}
		if to, ok := peer[from]; ok {
			if _, err := r.conn.WriteToUDPAddrPort(buf[:n], to); err == nil {
				r.forwarded.Add(1)
			}
		}
	}
}

// relayResult is the bare relay's figures over a window.
type relayResult struct {
	Calls                  int
	Sent, Received, Fwd    uint64
	CPU                    time.Duration
	Window                 time.Duration
	PerPacket              time.Duration
	RunDelay               time.Duration
	GatewayPID, GOMAXPROCS int
}

func (r *relayResult) print(w io.Writer) {
	fmt.Fprintf(w, "bare relay (in the gateway process, pid %d, GOMAXPROCS %d): %d calls, sent %d forwarded %d received %d; cpu %.2f s = %.1f%% of one core; per forwarded packet %.2f µs; run delay %.2f s\n",
		r.GatewayPID, r.GOMAXPROCS, r.Calls, r.Sent, r.Fwd, r.Received, r.CPU.Seconds(),
		100*r.CPU.Seconds()/r.Window.Seconds(), float64(r.PerPacket.Nanoseconds())/1e3, r.RunDelay.Seconds())
}

// blastRelay plays calls pairs of plain UDP legs through the gateway's
// relay at 50 packets/s per leg for d, and measures the gateway process's
// CPU over that window.
func blastRelay(ctx context.Context, gw *ctlClient, calls int, d time.Duration) (*relayResult, error) {
	st0, err := gw.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	if st0.RelayPort == 0 {
		return nil, errors.New("the gateway runs no bare relay")
	}
	raddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: st0.RelayPort}
	var received atomic.Uint64
	legs := make([]*net.UDPConn, 0, 2*calls)
	var wg sync.WaitGroup
	defer func() {
		for _, c := range legs {
			_ = c.Close()
		}
		wg.Wait()
	}()
	paired := make(chan struct{}, 2*calls)
	for i := range calls {
		for range 2 {
			c, err := net.DialUDP("udp4", nil, raddr)
			if err != nil {
				return nil, fmt.Errorf("relay leg: %w", err)
			}
			_ = c.SetReadBuffer(1 << 20)
			legs = append(legs, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := make([]byte, 2048)
				for {
					n, err := c.Read(b)
					if err != nil {
						return
					}
					if n == 2 && string(b[:2]) == "OK" {
						paired <- struct{}{}
						continue
					}
					received.Add(1)
				}
			}()
			if _, err := c.Write([]byte{'P', 'A', 'I', 'R', byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}); err != nil {
				return nil, fmt.Errorf("relay pair: %w", err)
			}
		}
	}
	deadline := time.After(10 * time.Second)
	for range 2 * calls {
		select {
		case <-paired:
		case <-deadline:
			return nil, errors.New("relay legs not paired within 10 s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	st1, err := gw.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, relayPacketLen)
	payload[0] = 0x80
	var sent uint64
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	start := time.Now()
	for time.Since(start) < d {
		select {
		case <-tk.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		for _, c := range legs {
			if _, err := c.Write(payload); err == nil {
				sent++
			}
		}
	}
	window := time.Since(start)
	st2, err := gw.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	res := &relayResult{Calls: calls, Sent: sent, Received: received.Load(), Fwd: st2.RelayForwarded - st1.RelayForwarded,
		CPU: time.Duration(st2.CPUNanos - st1.CPUNanos), Window: window, GatewayPID: st2.PID, GOMAXPROCS: st2.GOMAXPROCS}
	if st1.RunDelayNanos >= 0 && st2.RunDelayNanos >= 0 {
		res.RunDelay = time.Duration(st2.RunDelayNanos - st1.RunDelayNanos)
	}
	if res.Fwd > 0 {
		res.PerPacket = res.CPU / time.Duration(res.Fwd)
	}
	return res, nil
}
