// Command presence-bridge runs the presence bridge, checks its
// configuration, runs the Graph emulator on its own, and manages dead
// letters.
//
// Usage:
//
//	presence-bridge [run] --config FILE
//	presence-bridge check-config --config FILE
//	presence-bridge emulator --config FILE
//	presence-bridge dlq list|replay SEQ|purge --config FILE
//
// run stays up when external NATS servers can not be reached at start: it
// answers /healthz, reports not ready on /readyz, answers ingest with 503
// and connects when the servers come.
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
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

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
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
	command := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		command, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("presence-bridge "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.yaml", "path to the YAML configuration")
	// Flags may come before or after the command's own words
	// ("dlq list --config F").
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if command != "dlq" && len(words) > 0 {
		fmt.Fprintf(stderr, "%s takes no arguments, got %q\n", command, words)
		return exitUsage
	}
	switch command {
	case "run":
		return runBridge(ctx, *configPath, stderr)
	case "check-config":
		if _, err := config.Load(*configPath); err != nil {
			fmt.Fprintln(stdout, err)
			return exitUsage
		}
		fmt.Fprintln(stdout, "ok")
		return exitOK
	case "emulator":
		return runEmulator(ctx, *configPath, stderr)
	case "dlq":
		return runDLQ(ctx, *configPath, words, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "unknown command %q (run, check-config, emulator, dlq)\n", command)
		return exitUsage
	}
}

func runBridge(ctx context.Context, path string, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	log := newLogger(cfg.Log, stderr)
	b, err := bridge.New(cfg, log)
	if err != nil {
		log.Error("build bridge", "err", err)
		return exitFailure
	}
	if err := b.Run(ctx); err != nil {
		log.Error("bridge failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// runEmulator serves the Graph emulator alone, from the graph.emulator
// section of a bridge configuration or from a standalone emulator file.
func runEmulator(ctx context.Context, path string, stderr io.Writer) int {
	emCfg, logCfg, err := loadEmulatorConfig(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	log := newLogger(logCfg, stderr)
	em, err := emulator.New(emCfg, emulator.WithLogger(log))
	if err != nil {
		log.Error("build emulator", "err", err)
		return exitFailure
	}
	if err := em.Start(ctx); err != nil {
		log.Error("start emulator", "err", err)
		return exitFailure
	}
	log.Info("graph emulator listening", "addr", em.Addr(), "graph_url", em.GraphURL())
	<-ctx.Done()
	if err := em.Close(); err != nil {
		log.Error("stop emulator", "err", err)
		return exitFailure
	}
	return exitOK
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
