package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callgw/callgw/internal/app"
	"github.com/callgw/callgw/internal/doctor"
)

// doctorCmd checks the serve configuration (same flags and variables)
// against the network and Meta, prints each check with its fix and exits 1
// when one failed, 2 on a configuration error. Run it on the gateway host
// before starting callgw: it binds the media port to probe it.
func doctorCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := app.LoadConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "callgw doctor: configuration:", err)
		return 2
	}
	dc, err := cfg.DoctorConfig()
	if err != nil {
		fmt.Fprintln(stderr, "callgw doctor: configuration:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep := doctor.Run(ctx, dc)
	rep.Write(stdout)
	if !rep.OK() {
		return 1
	}
	return 0
}
