// Package cli is detailpage's command line: one subcommand per service,
// each with its own flag set whose defaults come from DETAILPAGE_*
// environment variables. It is the one place where services are wired.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"up":      {"start the whole topology on loopback (what `make run` does)", runUp},
	"broker":  {"run the embedded Kafka-protocol broker (kfake)", runBroker},
	"source":  {"run the source services (catalog in SQLite, outbox relay)", runSource},
	"sync":    {"run the sync service (Kafka → sources → Redis main)", runSync},
	"direct":  {"run the direct-data service (local cache → Redis main → rebuild)", runDirect},
	"hot":     {"run the hot-product service (detects surges from app nodes' reports)", runHot},
	"console": {"run the operator console: circuits, links, caches, hot set, manual degradation, /turbine.stream (:9100)", runConsole},
	"one":     {"run the OneServer: realtime price, stock, promotion and shipping (/api/realtime)", runOne},
	"nginx":   {"render an nginx tier's config and exec nginx in the foreground", runNginx},
	"dlq":     {"inspect or replay dead-lettered change events (dlq list | dlq replay)", runDLQ},
	"preheat": {"fill a cold Redis main hottest first and push the top pages into the app nodes (one-shot; instances split the work)", runPreheat},

	"bench-protect": {"measure source lookups under cache attacks, defences on and off (make bench)", runBenchProtect},
}

// Names lists the subcommands (the compose test checks against it).
func Names() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "detailpage: a high-availability product detail page system\n\nUsage:\n  detailpage <command> [flags]\n\nCommands:\n")
	for _, n := range Names() {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun `detailpage <command> --help` for a command's flags. Every flag can also be set\nthrough the environment variable named in its help (DETAILPAGE_...).\n")
}

// Main runs the command line and returns the exit code. SIGINT and SIGTERM
// cancel the command's context: services drain and stop cleanly.
func Main(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "detailpage: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(os.Stderr, "detailpage %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

// flags is a FlagSet whose defaults can come from the environment.
type flags struct {
	*flag.FlagSet
	errs []error
}

func newFlags(name string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("detailpage "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flags{FlagSet: fs}
}

func (f *flags) env(name, usage string) string {
	return fmt.Sprintf("%s (env %s)", usage, name)
}

func (f *flags) String(name, envName, def, usage string) *string {
	if v, ok := os.LookupEnv(envName); ok {
		def = v
	}
	return f.FlagSet.String(name, def, f.env(envName, usage))
}

func (f *flags) Int(name, envName string, def int, usage string) *int {
	if v, ok := os.LookupEnv(envName); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not an integer", envName, v))
		} else {
			def = n
		}
	}
	return f.FlagSet.Int(name, def, f.env(envName, usage))
}

func (f *flags) Duration(name, envName string, def time.Duration, usage string) *time.Duration {
	if v, ok := os.LookupEnv(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a duration", envName, v))
		} else {
			def = d
		}
	}
	return f.FlagSet.Duration(name, def, f.env(envName, usage))
}

// parse parses args; bad flags or environment values are a usage error.
func (f *flags) parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if f.NArg() > 0 {
		fmt.Fprintf(f.Output(), "unexpected arguments: %s\n", strings.Join(f.Args(), " "))
		return errUsage
	}
	if len(f.errs) > 0 {
		return errors.Join(f.errs...)
	}
	return nil
}
