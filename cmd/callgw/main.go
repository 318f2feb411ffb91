// Command callgw is the WhatsApp Business calling gateway: one binary that
// serves webhooks, agents, media and the pages. With no configuration it
// starts a complete local demo (embedded store, built-in Cloud API
// simulator). Subcommands: token, usage, ratecard, metrics, doctor.
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
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/internal/app"
	"github.com/callgw/callgw/signaling/agents"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		var err error
		switch args[0] {
		case "serve":
			return serve(args[1:], getenv, stdout, stderr)
		case "token":
			err = tokenCmd(args[1:], getenv, stdout, stderr)
		case "usage":
			err = usageCmd(args[1:], getenv, stdout, stderr)
		case "ratecard":
			err = ratecardCmd(args[1:], stdout)
		case "metrics":
			err = metricsCmd(stdout)
		case "doctor":
			return doctorCmd(args[1:], getenv, stdout, stderr)
		case "help":
			fmt.Fprintln(stdout, usageText)
			return 0
		default:
			fmt.Fprintf(stderr, "callgw: unknown command %q\n%s\n", args[0], usageText)
			return 2
		}
		if err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(stderr, "callgw:", err)
			}
			return 1
		}
		return 0
	}
	return serve(args, getenv, stdout, stderr)
}

const usageText = `usage:
  callgw [flags]                 serve (no configuration: local demo)
  callgw token --agent ID [--ttl 12h] [--role agent|supervisor]
  callgw usage --month 2026-11 [--format table|csv|json]
  callgw ratecard check FILE     validate a rate card (exit 1 with the failing field)
  callgw metrics                 list the Prometheus metric names
  callgw doctor [flags]          check the configuration against the network (same flags as serve)
Flags and CALLGW_* variables: callgw -h`

func newLogger(cfg app.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := app.LoadConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "callgw: configuration:", err)
		return 2
	}
	if cfg.Demo && getenv("CALLGW_LOG_FORMAT") == "" {
		cfg.LogFormat = "text"
	}
	if cfg.Demo && cfg.Rec.Mode == "" {
		cfg.Rec.Mode = "local" // the demo records its calls (consent notice first), under CALLGW_DATA_DIR or a temp dir
	}
	log := newLogger(cfg, stderr)
	app.SetRedisLogger(log) // go-redis' own lines become records of this log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if a.Cfg.Demo {
		printDemo(a, stdout)
	}
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func printDemo(a *app.App, w io.Writer) {
	tok, err := a.AgentToken("demo-agent", agents.RoleAgent, 24*time.Hour)
	if err != nil {
		return
	}
	sup, _ := a.AgentToken("demo-supervisor", agents.RoleSupervisor, 24*time.Hour)
	base := strings.TrimRight(a.Cfg.PublicURL, "/")
	fmt.Fprintf(w, `
  callgw demo is running (embedded store, built-in WhatsApp Cloud API simulator).

  Agent softphone:  %s/agent#token=%s
  Supervisor:       %s/supervisor#token=%s

  Open the agent link, press "Available", then "Simulate a WhatsApp caller".
  Stop with Ctrl-C.

`, base, tok, base, sup)
}

func tokenCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("callgw token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agent := fs.String("agent", "", "agent id (required)")
	ttl := fs.Duration("ttl", 12*time.Hour, "validity")
	role := fs.String("role", "agent", "agent or supervisor")
	secret := fs.String("token-secret", getenv("CALLGW_TOKEN_SECRET"), "signing secret (CALLGW_TOKEN_SECRET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *agent == "" {
		return errors.New("--agent is required")
	}
	if *secret == "" {
		return errors.New("CALLGW_TOKEN_SECRET (or --token-secret) is required: the server verifies tokens with it")
	}
	if *ttl <= 0 || *ttl > 31*24*time.Hour {
		return errors.New("--ttl must be between 1s and 744h")
	}
	tok, err := agents.IssueToken([]byte(*secret), *agent, agents.Role(*role), *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func usageCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("callgw usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loc, err := time.LoadLocation(getenv("CALLGW_BILLING_TIMEZONE"))
	if err != nil {
		return fmt.Errorf("CALLGW_BILLING_TIMEZONE: %w", err)
	}
	month := fs.String("month", time.Now().In(loc).Format("2006-01"), "month, YYYY-MM (default: this month in CALLGW_BILLING_TIMEZONE)")
	format := fs.String("format", "table", "table, csv or json")
	redisURL := fs.String("redis-url", getenv("CALLGW_REDIS_URL"), "Redis URL (CALLGW_REDIS_URL)")
	rateCard := fs.String("rate-card", getenv("CALLGW_RATE_CARD"), "rate card (CALLGW_RATE_CARD)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := time.Parse("2006-01", *month); err != nil {
		return errors.New("--month must be YYYY-MM")
	}
	if *redisURL == "" {
		return errors.New("CALLGW_REDIS_URL (or --redis-url) is required: usage lives in Redis")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := app.Usage(ctx, *redisURL, *rateCard, *month)
	if err != nil {
		return err
	}
	switch *format {
	case "table":
		return billing.WriteUsageTable(stdout, rep)
	case "csv":
		return billing.WriteUsageCSV(stdout, rep)
	case "json":
		return app.WriteJSON(stdout, rep)
	}
	return fmt.Errorf("--format %q must be table, csv or json", *format)
}

// ratecardCmd validates a rate card file: `callgw ratecard check FILE`
// prints a summary of its versions, or fails naming the field.
func ratecardCmd(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return errors.New("usage: callgw ratecard check FILE")
	}
	rc, err := billing.LoadRateCardFile(args[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok, %d card(s)\n%s", args[1], len(rc.Cards), rc.Summary())
	return nil
}

// metricsCmd prints every metric family a demo instance registers.
func metricsCmd(stdout io.Writer) error {
	names, err := app.MetricNames()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintln(stdout, n)
	}
	return nil
}
