package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/internal/bench"
)

// runBench runs a benchmark scenario, or all of them, and prints its report
// as JSON.
func runBench(ctx context.Context, a *app, args []string) error {
	names := strings.Join(append(slices.Clone(bench.Scenarios), "all"), "|")
	fs := a.flagSet(names+" [flags]", "REDIS_URL")
	var (
		cfg             bench.Config
		flush           bool
		dbMCP, dbBare   int
		enqueueDuration time.Duration
		cpuProfile      string
	)
	fs.IntVar(&cfg.Enqueue.Callers, "callers", 8, "enqueue: concurrent callers, each with its own MCP client")
	fs.DurationVar(&enqueueDuration, "duration", 5*time.Second, "enqueue: how long each side runs")
	fs.IntVar(&cfg.Throughput.Jobs, "jobs", 20000, "throughput: jobs queued on each side")
	fs.IntVar(&cfg.Throughput.Concurrency, "concurrency", 20, "throughput: jobs the worker and the bare asynq server run at once")
	fs.IntVar(&cfg.Wakeup.Waits, "waits", 200, "wakeup: sequential waiting tool calls on each side")
	fs.DurationVar(&cfg.Wakeup.PollInterval, "poll-interval", 100*time.Millisecond, "wakeup: how often the polling side calls get_job")
	fs.IntVar(&cfg.Latency.Calls, "calls", 100, "latency: sequential calls of each mode on each side")
	fs.DurationVar(&cfg.Latency.Latency, "latency", 50*time.Millisecond, "latency: time the platform takes per call")
	fs.IntVar(&cfg.Latency.Replicas, "latency-replicas", 1, "latency: worker replicas (and bare asynq servers), each with its own Redis connection")
	fs.DurationVar(&cfg.Latency.IdleWindow, "idle-window", 3*time.Second, "latency: how long an idle replica's Redis commands are counted")
	fs.IntVar(&cfg.Memory.Jobs, "queued", 10000, "memory: pending jobs queued on each side")
	fs.IntVar(&cfg.List.Jobs, "list-jobs", 100000, "list: jobs of one owner")
	fs.IntVar(&cfg.List.Pages, "pages", 200, "list: pages of 50 read in each mode")
	fs.IntVar(&cfg.TokenStorm.Replicas, "replicas", 3, "token-storm: worker replicas")
	fs.IntVar(&cfg.TokenStorm.InFlight, "in-flight", 16, "token-storm: concurrent calls per replica")
	fs.IntVar(&cfg.TokenStorm.Expiries, "expiries", 5, "token-storm: times every token is ended")
	fs.DurationVar(&cfg.TokenStorm.Phase, "phase", 0, "token-storm: how long calls run before the first expiry and after each, at least: until every caller has a token that works (default 500ms)")
	fs.IntVar(&dbMCP, "db-mcpjobs", 14, "Redis database of the mcpjobs side of each scenario")
	fs.IntVar(&dbBare, "db-baseline", 15, "Redis database of the baseline side of each scenario")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	fs.BoolVar(&flush, "flush", false, "empty the two databases of the REDIS_URL you gave when they hold keys (a Redis the bench starts itself is always emptied)")
	if len(args) == 0 || !(slices.Contains(bench.Scenarios, args[0]) || args[0] == "all") {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	scenario := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg.Enqueue.Duration = enqueueDuration
	cfg.Logger = a.log

	ownRedis := a.cfg.RedisURL == ""
	if ownRedis {
		if _, err := exec.LookPath("redis-server"); err != nil {
			return errors.New("the bench needs a real Redis: install redis-server (apt-get install redis-server) or set REDIS_URL")
		}
	}
	stateDir, err := os.MkdirTemp("", "mcpjobs-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	lr, err := startLocalRedis(ctx, a, stateDir)
	if err != nil {
		return err
	}
	defer lr.stop()
	opt, err := asynq.ParseRedisURI(lr.url)
	if err != nil {
		return err
	}
	if cfg.Redis.MCPJobs, err = bench.WithDB(opt, dbMCP); err != nil {
		return err
	}
	if cfg.Redis.Baseline, err = bench.WithDB(opt, dbBare); err != nil {
		return err
	}
	cfg.Redis.Flush = ownRedis || flush

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Run(ctx, scenario, cfg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
