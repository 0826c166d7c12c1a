// Command presence-bridge runs the presence bridge, checks its
// configuration, runs the Graph emulator on its own, and talks to a running
// bridge's admin API: its status, why a user shows what they show, and dead
// letters. `presence-bridge --help` lists the commands.
//
// run stays up when external NATS servers can not be reached at start: it
// answers /healthz, reports not ready on /readyz, answers ingest with 503
// and connects when the servers come. SIGHUP, or a change of the
// configuration or directory file, reloads the directory and the sources'
// credentials.
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
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
	"strings"
	"syscall"
	"time"

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
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, hup: hup})
	stop()
	os.Exit(code)
}

// env is what a command line runs with; tests give buffers.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// hup delivers SIGHUP to `run`; nil in tests that do not reload.
	hup <-chan os.Signal
	// watchEvery is how often `run` looks for changed files (default 5s).
	watchEvery time.Duration
}

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) int
}

// commands lists every subcommand in the order --help shows them.
func commands() []command {
	return []command{
		{"run", "[--config FILE]", "Run the bridge (the default when no command is given).", runBridge},
		{"check-config", "[--config FILE]", "Check a configuration: every problem at once, then warnings.", checkConfig},
		{"emulator", "[--config FILE]", "Run the Microsoft Graph emulator on its own.", runEmulator},
		{"status", "[-o table|json]", "Show a running bridge's tenants and sources.", runStatus},
		{"outputs", "[-o table|json]", "List a running bridge's outputs with their health.", runOutputs},
		{"why", "USER [--tenant T] [-o text|json]", "Show what a running bridge knows of USER (UPN, directory key or object id).", runWhy},
		{"dlq list", "[--source S] [--reason TEXT] [--since 1h|TIME] [-o table|json]", "List dead letters.", runDLQList},
		{"dlq replay", "SEQ... | --all [filters of dlq list]", "Put dead letters back in the event stream.", runDLQReplay},
		{"dlq purge", "[--yes]", "Delete every dead letter (asks first unless --yes).", runDLQPurge},
		{"version", "", "Print the version.", func(_ context.Context, e *env, _ []string) int {
			fmt.Fprintln(e.stdout, versionLine())
			return exitOK
		}},
	}
}

// usage prints the list of commands.
func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: presence-bridge [COMMAND] [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n  %-13s   %s\n", c.name, c.summary, "", c.args)
	}
	fmt.Fprint(w, `
The commands status, outputs, why and dlq talk to a running bridge's admin API; they
take --url (or PRESENCE_BRIDGE_URL, e.g. http://127.0.0.1:8080) and --token
(or PRESENCE_BRIDGE_TOKEN, the admin.token), or read both from --config
(the URL from admin.listen when it is set, else from http.listen).

Flags: --help lists the commands, --version prints the version;
COMMAND --help lists a command's flags.
Exit codes: 0 success, 1 failure, 2 bad usage or configuration.
`)
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, e *env) int {
	if e.getenv == nil {
		e.getenv = func(string) string { return "" }
	}
	if e.stdin == nil {
		e.stdin = strings.NewReader("")
	}
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			usage(e.stdout)
			return exitOK
		case "-version", "--version":
			args[0] = "version"
		}
	}
	name := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
		if name == "dlq" {
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				fmt.Fprintln(e.stderr, "dlq needs a subcommand: list, replay or purge (see presence-bridge --help)")
				return exitUsage
			}
			name, args = "dlq "+args[0], args[1:]
		}
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, args)
		}
	}
	fmt.Fprintf(e.stderr, "unknown command %q (see presence-bridge --help)\n", name)
	return exitUsage
}

// parseFlags parses fs from args, flags before or after the command's own
// words ("dlq replay 3 --url U"), and returns the words. It returns an
// exit code when the command should end here (--help, a bad flag).
func parseFlags(fs *flag.FlagSet, args []string, e *env) ([]string, int, bool) {
	fs.SetOutput(e.stderr)
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			return words, 0, true
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// noWords reports a command given words it does not take.
func noWords(e *env, name string, words []string) bool {
	if len(words) > 0 {
		fmt.Fprintf(e.stderr, "%s takes no arguments, got %q\n", name, words)
		return false
	}
	return true
}

func checkConfig(_ context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge check-config", flag.ContinueOnError)
	path := fs.String("config", "config.yaml", "path to the YAML configuration")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "check-config", words) {
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	fmt.Fprintln(e.stdout, "ok")
	return exitOK
}

func runBridge(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge run", flag.ContinueOnError)
	path := fs.String("config", "config.yaml", "path to the YAML configuration")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "run", words) {
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	log := newLogger(cfg.Log, e.stderr)
	log.Info("presence bridge starting", "version", versionLine())
	v, rev, _ := buildVersion()
	b, err := bridge.New(cfg, log, bridge.WithVersion(v, rev))
	if err != nil {
		log.Error("build bridge", "err", err)
		return exitFailure
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		watchConfig(runCtx, *path, e.hup, e.watchEvery, func(cfg *config.Config) error { return b.Reload(cfg) }, log)
	}()
	err = b.Run(runCtx)
	cancel()
	<-reloads
	if err != nil {
		log.Error("bridge failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// runEmulator serves the Graph emulator alone, from the graph.emulator
// section of a bridge configuration or from a standalone emulator file.
func runEmulator(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("presence-bridge emulator", flag.ContinueOnError)
	path := fs.String("config", "config.yaml", "path to the YAML configuration")
	words, code, ok := parseFlags(fs, args, e)
	if !ok {
		return code
	}
	if !noWords(e, "emulator", words) {
		return exitUsage
	}
	emCfg, logCfg, err := loadEmulatorConfig(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	log := newLogger(logCfg, e.stderr)
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
