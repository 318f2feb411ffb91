package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runMain(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "callgw-load:", err)
		os.Exit(1)
	}
}

// runMain dispatches on the role: `gateway`, `peers`, or (no role) both in
// this process.
func runMain(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "gateway":
			return runGateway(ctx, args[1:], stdout)
		case "peers":
			return runPeers(ctx, args[1:], stdout)
		}
	}
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	var gw *ctlClient
	if !cfg.Direct {
		g, err := startGateway(gatewayConfig{UDPPort: cfg.UDPPort, Ctl: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		go func() { done <- g.serve(gctx) }()
		defer func() { cancel(); <-done }()
		gw = newCtlClient(g.addr(), cfg.SetupParallel)
		defer gw.close()
	}
	_, err = report1(ctx, cfg, gw, stdout)
	return err
}

// runPeers is `callgw-load peers`: the simulated peers against a gateway
// process's control API.
func runPeers(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parsePeersFlags(args)
	if err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	gw := newCtlClient(cfg.Ctl, cfg.SetupParallel)
	defer gw.close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = gw.waitReady(rctx)
	cancel()
	if err != nil {
		return err
	}
	var base *relayResult
	if cfg.Baseline {
		if base, err = blastRelay(ctx, gw, cfg.Calls, cfg.Duration); err != nil {
			return fmt.Errorf("bare relay baseline: %w", err)
		}
		base.print(stdout)
	}
	rep, err := report1(ctx, cfg, gw, stdout)
	if err != nil {
		return err
	}
	printRatio(stdout, "bridge", rep, base)
	if cfg.StockCtl != "" {
		stock := newCtlClient(cfg.StockCtl, cfg.SetupParallel)
		defer stock.close()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = stock.waitReady(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("stock bridge: %w", err)
		}
		fmt.Fprintln(stdout, "--- the same run against the stock bridge at", cfg.StockCtl)
		srep, err := report1(ctx, cfg, stock, stdout)
		// the ratios stand even when a few of the stock bridge's calls failed
		printRatio(stdout, "stock bridge", srep, base)
		if pp, sp := perPacket(rep), perPacket(srep); pp > 0 && sp > 0 {
			fmt.Fprintf(stdout, "ratio bridge / stock bridge (CPU per forwarded packet): %.2f\n", pp/sp)
		}
		if err != nil {
			return fmt.Errorf("stock bridge: %w", err)
		}
	}
	return nil
}

// perPacket is the gateway's CPU µs per forwarded packet in rep's window
// (0: unknown).
func perPacket(rep *report) float64 {
	if rep == nil || rep.Gateway == nil || rep.Gateway.Forwarded == 0 {
		return 0
	}
	return float64(rep.Gateway.CPU.Nanoseconds()) / 1e3 / float64(rep.Gateway.Forwarded)
}

// printRatio prints what rep's gateway costs per forwarded packet as a
// multiple of the bare relay's.
func printRatio(w io.Writer, name string, rep *report, base *relayResult) {
	pp := perPacket(rep)
	if base == nil || base.PerPacket <= 0 || pp == 0 {
		return
	}
	rel := float64(base.PerPacket.Nanoseconds()) / 1e3
	fmt.Fprintf(w, "ratio %s / bare relay (CPU per forwarded packet): %.1f µs / %.2f µs = %.2f\n", name, pp, rel, pp/rel)
}

func report1(ctx context.Context, cfg config, gw *ctlClient, stdout io.Writer) (*report, error) {
	rep, err := run(ctx, cfg, gw)
	if rep != nil {
		rep.print(stdout)
	}
	if err != nil {
		return rep, err
	}
	if rep.Established < cfg.Calls {
		return rep, fmt.Errorf("%d of %d calls established", rep.Established, cfg.Calls)
	}
	return rep, nil
}

func commonFlags(fs *flag.FlagSet, c *config) {
	fs.IntVar(&c.Calls, "calls", 10, "simulated calls")
	fs.DurationVar(&c.Duration, "duration", 10e9, "how long every call plays audio once all are established")
	fs.DurationVar(&c.Ramp, "ramp", 0, "spread call set-up over this long (0: as fast as -setup-parallel allows)")
	fs.IntVar(&c.SetupParallel, "setup-parallel", 8, "calls being set up at once")
	fs.IntVar(&c.SendSlots, "send-slots", defaultSendSlots, "light peers: every endpoint sends its 20 ms frame in one of this many slots of the frame (20: 1 ms slots; 80: 250 µs, smoother arrivals)")
	fs.StringVar(&c.Peers, "peers", defaultPeers, "simulated endpoints: light (Pion handshake, then SRTP on one shared socket in batches) or pion (stock Pion PeerConnections)")
}

// parseFlags parses the single-process mode's flags.
func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("callgw-load", flag.ContinueOnError)
	commonFlags(fs, &c)
	fs.BoolVar(&c.Direct, "direct", false, "baseline: connect the peers directly, without the bridge")
	fs.IntVar(&c.UDPPort, "port", 0, "engine UDP port (0: a free one)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (roles: gateway, peers)", fs.Args())
	}
	return c, c.validate()
}

// parsePeersFlags parses `callgw-load peers` flags; -ctl is required.
func parsePeersFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("callgw-load peers", flag.ContinueOnError)
	commonFlags(fs, &c)
	fs.StringVar(&c.Ctl, "ctl", "", "the gateway's control API address (required, loopback)")
	fs.BoolVar(&c.Baseline, "baseline", true, "first measure the gateway process's bare UDP relay at the same call count and print the ratio")
	fs.StringVar(&c.StockCtl, "stock-ctl", "", "also run against the stock bridge's control API at this address and print its ratios")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of this peers process to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Ctl == "" {
		return c, errors.New("-ctl is required")
	}
	if c.StockCtl != "" {
		if err := loopbackAddr(c.StockCtl); err != nil {
			return c, fmt.Errorf("-stock-ctl: %w", err)
		}
	}
	return c, c.validate()
}
