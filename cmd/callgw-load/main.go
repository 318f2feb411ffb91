package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runMain(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "callgw-load:", err)
		os.Exit(1)
	}
}

func runMain(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	rep, err := run(ctx, cfg)
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

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("callgw-load", flag.ContinueOnError)
	fs.IntVar(&c.Calls, "calls", 10, "simulated calls")
	fs.DurationVar(&c.Duration, "duration", 10e9, "how long every call plays audio once all are established")
	fs.DurationVar(&c.Ramp, "ramp", 0, "spread call set-up over this long (0: as fast as -setup-parallel allows)")
	fs.IntVar(&c.SetupParallel, "setup-parallel", 8, "calls being set up at once")
	fs.BoolVar(&c.Direct, "direct", false, "baseline: connect the peers directly, without the bridge")
	fs.IntVar(&c.UDPPort, "port", 0, "engine UDP port (0: a free one)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.validate()
}
