package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/callgw/callgw/media"
	"github.com/prometheus/client_golang/prometheus"
)

// gatewayConfig is the gateway role's settings (flags).
type gatewayConfig struct {
	UDPPort int    // engine UDP port (ICE UDP mux); default 0 = a free one
	Ctl     string // control API listen address, loopback only; default 127.0.0.1:7480
	Path    media.PacketPath
	// ForwardDelay: media.Config.MeasureForwardDelay (kernel arrival
	// timestamps; costs CPU per datagram).
	ForwardDelay bool
	// CPUProfile, when set, receives a CPU profile of the whole gateway run.
	CPUProfile string
}

func (c gatewayConfig) validate() error {
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		return fmt.Errorf("-port %d out of range", c.UDPPort)
	}
	if err := loopbackAddr(c.Ctl); err != nil {
		return fmt.Errorf("-ctl: %w", err)
	}
	return nil
}

func parseGatewayFlags(args []string) (gatewayConfig, error) {
	var c gatewayConfig
	fs := flag.NewFlagSet("callgw-load gateway", flag.ContinueOnError)
	fs.IntVar(&c.UDPPort, "port", 0, "engine UDP port (0: a free one)")
	fs.StringVar(&c.Ctl, "ctl", "127.0.0.1:7480", "control API address (loopback)")
	path := fs.String("path", "default", "engine packet path: default, pion or fast")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.BoolVar(&c.ForwardDelay, "forward-delay", false, "measure each forwarded packet's time in the gateway (kernel arrival timestamps; costs CPU)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.Path, err = media.ParsePacketPath(*path); err != nil {
		return c, fmt.Errorf("-path: %w", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.validate()
}

// gateway is a media.Engine on one loopback UDP port plus its control API.
type gateway struct {
	eng     *media.Engine
	srv     *gatewayServer
	ln      net.Listener
	udpPort int
}

// startGateway starts the engine and listens for the control API; serve
// runs it.
func startGateway(cfg gatewayConfig, log *slog.Logger) (*gateway, error) {
	port := cfg.UDPPort
	if port == 0 {
		var err error
		if port, err = freeUDPPort(); err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	eng, err := media.NewEngine(media.Config{LoopbackOnly: true, UDPPort: port, PacketPath: cfg.Path,
		MeasureForwardDelay: cfg.ForwardDelay, Logger: log}, reg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Ctl)
	if err != nil {
		_ = eng.Close()
		return nil, fmt.Errorf("control api: %w", err)
	}
	rl, err := startRelay()
	if err != nil {
		_ = ln.Close()
		_ = eng.Close()
		return nil, err
	}
	srv := newGatewayServer(eng, reg, log)
	srv.relay = rl
	return &gateway{eng: eng, srv: srv, ln: ln, udpPort: port}, nil
}

func (g *gateway) addr() string { return g.ln.Addr().String() }

// serve serves the control API until ctx is done, then closes every bridge
// and the engine.
func (g *gateway) serve(ctx context.Context) error {
	err := serveGateway(ctx, g.srv, g.ln)
	if g.srv.relay != nil {
		g.srv.relay.close()
	}
	if cerr := g.eng.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close engine: %w", cerr)
	}
	return err
}

// runGateway is `callgw-load gateway`: it serves until ctx is done (SIGINT
// or SIGTERM) and prints the process's figures at start and at the end.
func runGateway(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseGatewayFlags(args)
	if err != nil {
		return err
	}
	g, err := startGateway(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			_ = g.serve(canceled(ctx))
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = g.serve(canceled(ctx))
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	st, err := g.srv.snapshot(false)
	if err != nil {
		_ = g.serve(canceled(ctx))
		return err
	}
	fmt.Fprintf(stdout, "gateway ready: control http://%s media udp 127.0.0.1:%d pid %d GOMAXPROCS %d path %v\n",
		g.addr(), g.udpPort, st.PID, runtime.GOMAXPROCS(0), cfg.Path)
	err = g.serve(ctx)
	if st, serr := g.srv.snapshot(false); serr == nil {
		fmt.Fprintf(stdout, "gateway done: cpu %.2f s, peak rss %d MB, forwarded to_agent %d to_whatsapp %d, dropped %d/%d, silence %d\n",
			float64(st.CPUNanos)/1e9, st.MaxRSSBytes>>20, st.ForwardedToAgent, st.ForwardedToWA,
			st.DroppedToAgent, st.DroppedToWA, st.Silence)
	}
	return err
}

// canceled is a context derived from ctx that is already done.
func canceled(ctx context.Context) context.Context {
	c, cancel := context.WithCancel(ctx)
	cancel()
	return c
}
