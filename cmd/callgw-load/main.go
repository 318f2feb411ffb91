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
	return report1(ctx, cfg, gw, stdout)
}

// runPeers is `callgw-load peers`: the simulated peers against a gateway
// process's control API.
func runPeers(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parsePeersFlags(args)
	if err != nil {
		return err
	}
	gw := newCtlClient(cfg.Ctl, cfg.SetupParallel)
	defer gw.close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = gw.waitReady(rctx)
	cancel()
	if err != nil {
		return err
	}
	return report1(ctx, cfg, gw, stdout)
}

func report1(ctx context.Context, cfg config, gw *ctlClient, stdout io.Writer) error {
	rep, err := run(ctx, cfg, gw)
	if rep != nil {
		rep.print(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Established < cfg.Calls {
		return fmt.Errorf("%d of %d calls established", rep.Established, cfg.Calls)
	}
	return nil
}

func commonFlags(fs *flag.FlagSet, c *config) {
	fs.IntVar(&c.Calls, "calls", 10, "simulated calls")
	fs.DurationVar(&c.Duration, "duration", 10e9, "how long every call plays audio once all are established")
	fs.DurationVar(&c.Ramp, "ramp", 0, "spread call set-up over this long (0: as fast as -setup-parallel allows)")
	fs.IntVar(&c.SetupParallel, "setup-parallel", 8, "calls being set up at once")
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
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Ctl == "" {
		return c, errors.New("-ctl is required")
	}
	return c, c.validate()
}
