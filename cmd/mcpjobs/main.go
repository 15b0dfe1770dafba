// Command mcpjobs runs the mcpjobs job-queue system: the MCP server, worker
// replicas, the platform simulator, or all of them at once (dev).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, a *app, args []string) error
}

var commands = map[string]command{
	"bench":  {"run a benchmark scenario (enqueue, throughput, wakeup, memory, token-storm, all) and print JSON", runBench},
	"dev":    {"run everything in one process: Redis, simulator, worker and MCP over HTTP", runDev},
	"health": {"probe an HTTP health endpoint (exit 0 on 2xx), for container health checks", runHealth},
	"mcp":    {"serve MCP over stdio or streamable HTTP", runMCP},
	"worker": {"run one worker replica", runWorker},
	"sim":    {"run the intranet platform simulator", runSim},
	"token":  {"show the shared platform token (status) or force a refresh (refresh)", runToken},
	"web":    {"serve the operator site: asynqmon at /monitoring, /metrics, /healthz, /readyz", runWeb},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run runs a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mcpjobs: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	a, err := newApp(args[0], stdin, stdout, stderr, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "mcpjobs: %v\n", err)
		return 1
	}
	if err := cmd.run(ctx, a, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		a.log.Error("mcpjobs "+args[0]+" failed", "error", err)
		fmt.Fprintf(stderr, "mcpjobs %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mcpjobs <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'mcpjobs <command> --help' for its flags and environment; 'mcpjobs --version' for the version.")
}
