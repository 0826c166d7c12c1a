// Command presence-load measures the bridge from outside, the way issue 10's
// acceptance asks: a load generator posting single canonical events over
// HTTP, a bare Gin handler that only binds, validates, publishes to an
// embedded JetStream and answers 202, and an end-to-end run comparing the
// two on the same machine.
//
// Usage:
//
//	presence-load bare --listen 127.0.0.1:PORT --token T
//	presence-load post --url URL --token T [--duration 10s] [--conns 64] [--users 1000] [--rate N] [--metrics URL]
//	presence-load e2e --bridge PATH [--config cmd/presence-load/bridge.yaml] [--latency-only] [--tenants N] [--graph-apart=false]
//	presence-load scale --bridge PATH [--config cmd/presence-load/bridge.yaml] [--users 10000] [--quiet 60s]
//
// Exit codes: 0 success, 1 failure or a missed target (e2e), 2 bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: presence-load bare|post|e2e|scale [flags]")
		return exitUsage
	}
	command, args := args[0], args[1:]
	fs := flag.NewFlagSet("presence-load "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch command {
	case "bare":
		listen := fs.String("listen", "127.0.0.1:8090", "the address to serve on")
		token := fs.String("token", "", "the bearer token POST /v1/events requires")
		if fs.Parse(args) != nil || *token == "" {
			fmt.Fprintln(stderr, "bare needs --token")
			return exitUsage
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := runBare(ctx, *listen, *token, log); err != nil {
			fmt.Fprintln(stderr, "bare:", err)
			return exitFailure
		}
		return exitOK
	case "post":
		var o postOptions
		o.flags(fs)
		if fs.Parse(args) != nil {
			return exitUsage
		}
		if err := o.check(); err != nil {
			fmt.Fprintln(stderr, "post:", err)
			return exitUsage
		}
		r, err := post(ctx, o)
		if err != nil {
			fmt.Fprintln(stderr, "post:", err)
			return exitFailure
		}
		r.print(stdout)
		return exitOK
	case "e2e":
		var o e2eOptions
		fs.StringVar(&o.bridge, "bridge", "presence-bridge", "the presence-bridge binary")
		fs.StringVar(&o.config, "config", "cmd/presence-load/bridge.yaml", "the bench configuration of the bridge")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each load runs")
		fs.IntVar(&o.conns, "conns", 64, "keep-alive connections")
		fs.IntVar(&o.users, "users", 1000, "distinct users the events are about")
		fs.Float64Var(&o.rate, "rate", 2000, "the fixed rate of the latency runs, events per second")
		fs.DurationVar(&o.applyWait, "apply-wait", 5*time.Minute, "how long to wait for the bridge to apply what it accepted")
		fs.StringVar(&o.revision, "revision", "an unnamed commit", "the commit measured, printed in the header")
		fs.BoolVar(&o.graphApart, "graph-apart", true, "run the Graph emulator in a process of its own, as Graph is (false: inside the bridge's process)")
		fs.BoolVar(&o.latencyOnly, "latency-only", false, "run only the accepted-to-Graph latency runs (200/s and 2,000/s), not the comparison with the bare handler")
		fs.IntVar(&o.tenants, "tenants", 1, "spread the users of the latency runs over this many tenants, each with its own source and Graph budget")
		if fs.Parse(args) != nil {
			return exitUsage
		}
		if o.tenants < 1 || o.tenants > o.users {
			fmt.Fprintln(stderr, "e2e: --tenants must be 1 to --users")
			return exitUsage
		}
		ok, err := runE2E(ctx, o, stdout, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "e2e:", err)
			return exitFailure
		}
		if !ok {
			return exitFailure
		}
		return exitOK
	case "scale":
		var o scaleOptions
		fs.StringVar(&o.bridge, "bridge", "presence-bridge", "the presence-bridge binary (also run as the emulator)")
		fs.StringVar(&o.config, "config", "cmd/presence-load/bridge.yaml", "the bench configuration of the bridge")
		fs.IntVar(&o.users, "users", 10000, "the people of the tenant, one call each")
		fs.IntVar(&o.conns, "conns", 64, "keep-alive connections")
		fs.DurationVar(&o.quiet, "quiet", time.Minute, "how long the bridge runs without traffic before it is measured again after each phase and after the restart")
		fs.DurationVar(&o.settle, "settle", 5*time.Second, "the rest before each memory reading")
		fs.DurationVar(&o.applyWait, "apply-wait", 15*time.Minute, "how long to wait for the bridge to apply and tell Graph")
		fs.StringVar(&o.revision, "revision", "an unnamed commit", "the commit measured, printed in the header")
		if fs.Parse(args) != nil || o.users < 1 || o.conns < 1 {
			return exitUsage
		}
		ok, err := runScale(ctx, o, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "scale:", err)
			return exitFailure
		}
		if !ok {
			return exitFailure
		}
		return exitOK
	default:
		fmt.Fprintf(stderr, "unknown command %q (bare, post, e2e, scale)\n", command)
		return exitUsage
	}
}
