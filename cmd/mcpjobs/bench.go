package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/bench"
)

// runBench runs a benchmark scenario and prints its report as JSON.
func runBench(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("token-storm [flags]", "REDIS_URL")
	var cfg bench.TokenStormConfig
	fs.IntVar(&cfg.Replicas, "replicas", 3, "worker replicas")
	fs.IntVar(&cfg.InFlight, "in-flight", 16, "concurrent calls per replica")
	fs.IntVar(&cfg.Expiries, "expiries", 5, "times every token is ended")
	fs.DurationVar(&cfg.Phase, "phase", 0, "how long calls run before the first expiry and after each (default 500ms)")
	if len(args) == 0 || args[0] != "token-storm" {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
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
	cfg.NewRedis = func() redis.UniversalClient { return opt.MakeRedisClient().(redis.UniversalClient) }
	rep, err := bench.TokenStorm(ctx, cfg)
	if err != nil {
		return fmt.Errorf("token-storm: %w", err)
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
